"""The course-day simulation of issue 20 (benchmarks/course_day.py): its bookkeeping on a day
small enough to follow by hand, and what a student's day can look like."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import course_day

TEN = 10 * 3600.0  # 10:00 in seconds since midnight


def test_two_students_one_gpu_by_hand():
    # Timeout 600 s, one GPU. A asks at 10:00:00 (wakes: 30 s), 10:05:00 (awake) and 10:33:20;
    # B at 10:01:40 (A holds the GPU: none free) and 10:16:40 (A slept at 10:15:00: B wakes,
    # 40 s).
    # A: awake 36000 .. 36300 + 600 = 36900 (900 s), again 38000 .. 38000 + 30 + 600 (630 s);
    # B: 37000 .. 37000 + 40 + 600 (640 s). 900 + 630 + 640 = 2170 s.
    a = ([TEN, TEN + 300, TEN + 2000], 30.0)
    b = ([TEN + 100, TEN + 1000], 40.0)
    outcome = course_day.simulate([[a, b]], timeout=600, pool=1)
    assert outcome.gpu_hours == pytest.approx(2170 / 3600)
    assert (outcome.wakes, outcome.no_gpu, outcome.requests) == (3, 1, 5)
    assert outcome.waits == [30.0, 40.0, 30.0]


def test_a_request_while_waking_waits_for_the_same_wake():
    # Load 100 s: the second request (at +50 s) is answered at +100 s, idle from there: awake
    # until 100 + 600 s.
    outcome = course_day.simulate([[([TEN, TEN + 50], 100.0)]], timeout=600, pool=1)
    assert (outcome.wakes, outcome.gpu_hours) == (1, pytest.approx(700 / 3600))


def test_load_time_of_the_course_models():
    # 20 s to start, then 2 bytes a parameter at 0.5 GB/s: Qwen2.5 1.5B's 1.54e9 parameters
    # are 3.08 GB, 6.16 s; Phi-3 mini's 3.82e9 are 7.64 GB, 15.28 s.
    assumptions = course_day.Assumptions()
    assert course_day.load_seconds(1.54e9, assumptions) == pytest.approx(26.16)
    assert course_day.load_seconds(3.82e9, assumptions) == pytest.approx(35.28)


def test_a_lab_only_day_asks_within_the_lab():
    assumptions = course_day.Assumptions(lab_attendance=1.0, homework_sessions=0.0)
    times = course_day.student_day(random.Random(1), assumptions)
    assert times == sorted(times) and times
    assert assumptions.lab_start <= times[0] <= assumptions.lab_start + 15 * 60
    assert times[-1] < assumptions.lab_end


def test_sleeping_holds_fewer_gpu_hours_the_shorter_the_timeout():
    report = course_day.run(days=5, seed=3, assumptions=course_day.Assumptions())
    hours = [row["gpu_hours_per_day"] for row in report["rows"]]
    assert hours[0] == 40 * 12  # always on: 40 GPUs for 12 hours
    assert hours[1:] == sorted(hours[1:]) and hours[-1] < hours[0]
