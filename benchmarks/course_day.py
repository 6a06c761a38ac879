"""What idle servers giving their GPUs back would save a course (issue 20), by simulation.

A course day of 40 students, each with one inference server on a V100, is simulated many times:
always on (each server holds its GPU from the first minute to the last), and with the server
put to sleep after 15, 30, 60 or 120 idle minutes and woken by the next request. It reports the
GPU-hours held, the waits students see when their first request wakes a server (median and 95th
percentile), and the requests that found no GPU free in the course's share of the cluster.

    .venv/bin/python benchmarks/course_day.py            # the table, and benchmarks/course_day.json
    .venv/bin/python benchmarks/course_day.py --days 50 --pool 16

The assumptions, each a flag (`--help`):
- The day runs from 08:00 to 20:00. A lab slot from 10:00 to 11:30 that 70 % of the students
  attend: they start chatting in its first 15 minutes and stop in its last 20 (a course with a
  weekly lab uses the model there most). Besides, each student has a Poisson number of homework
  sessions (mean 1.0) starting uniformly between 13:00 and 19:30, lasting a log-normal time
  (median 20 minutes, sigma 0.6: most short, some long). Within a session the requests come as
  a Poisson process, one every 90 s on average (read the answer, type the next question).
- Each student's model is drawn from the course's mix: Qwen2.5-1.5B-Instruct (60 %),
  Llama-3.2-3B-Instruct (25 %), Phi-3-mini-4k-instruct (15 %), with their published parameter
  counts (1.54 B, 3.21 B, 3.82 B). Waking loads the weights (2 bytes a parameter) from the
  namespace's cache volume at 0.5 GB/s, after 20 s for the container start, CUDA context and
  warm-up: 26 s, 33 s and 35 s. The sandbox's stand-in starts faster; these are estimates for
  a V100 node reading a network volume, not measured on the ICC.
- The course's share of the cluster is 30 V100s (`--pool`), enough for the lab's 28 students on
  an average day: a wake that finds all of them held by awake servers fails, and the student's
  next request tries again. Always on needs one GPU per student all day (40); the table gives it
  as the baseline, not run against the pool.
- A request that arrives while its server wakes waits for the same wake; a server falls asleep
  when it has been idle for the timeout (health checks and the model list do not count).

No Ansible and no cluster: plain Python with a seeded random generator, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MINUTE = 60.0
DAY_START, DAY_END = 8 * 60 * MINUTE, 20 * 60 * MINUTE  # seconds since midnight
MODELS = {  # id: (share of the course, parameters)
    "Qwen/Qwen2.5-1.5B-Instruct": (0.60, 1.54e9),
    "meta-llama/Llama-3.2-3B-Instruct": (0.25, 3.21e9),
    "microsoft/Phi-3-mini-4k-instruct": (0.15, 3.82e9),
}
TIMEOUTS_MINUTES = (15, 30, 60, 120)


@dataclass(frozen=True)
class Assumptions:
    students: int = 40
    pool: int = 30
    lab_start: float = 10 * 60 * MINUTE
    lab_end: float = 11.5 * 60 * MINUTE
    lab_attendance: float = 0.7
    homework_sessions: float = 1.0  # Poisson mean per student and day
    homework_from: float = 13 * 60 * MINUTE
    homework_until: float = 19.5 * 60 * MINUTE
    session_median_minutes: float = 20.0
    session_sigma: float = 0.6
    request_gap_seconds: float = 90.0
    read_gb_per_second: float = 0.5
    start_seconds: float = 20.0


def load_seconds(parameters: float, assumptions: Assumptions) -> float:
    """Seconds from a wake to the first answer: start, then the fp16 weights from the volume."""
    return assumptions.start_seconds + parameters * 2 / 1e9 / assumptions.read_gb_per_second


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: enough for the small means here."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _requests(rng: random.Random, start: float, end: float, gap: float) -> list[float]:
    """A Poisson stream of requests from `start` (the first one) until `end`."""
    times, now = [], start
    while now < end:
        times.append(now)
        now += rng.expovariate(1 / gap)
    return times


def student_day(rng: random.Random, assumptions: Assumptions) -> list[float]:
    """The request times of one student's day, sorted (seconds since midnight)."""
    a, times = assumptions, []
    if rng.random() < a.lab_attendance:
        start = a.lab_start + rng.uniform(0, 15 * MINUTE)
        end = a.lab_end - rng.uniform(0, 20 * MINUTE)
        times += _requests(rng, start, end, a.request_gap_seconds)
    for _ in range(_poisson(rng, a.homework_sessions)):
        start = rng.uniform(a.homework_from, a.homework_until)
        length = a.session_median_minutes * MINUTE * math.exp(rng.gauss(0, a.session_sigma))
        times += _requests(rng, start, min(start + length, DAY_END), a.request_gap_seconds)
    return sorted(times)


def course_models(rng: random.Random, students: int) -> list[str]:
    names = list(MODELS)
    return rng.choices(names, weights=[MODELS[name][0] for name in names], k=students)


@dataclass
class Outcome:
    """One policy over one or more days."""

    gpu_hours: float = 0.0
    wakes: int = 0
    waits: list[float] = field(default_factory=list)  # seconds, one per wake
    no_gpu: int = 0  # requests whose wake found no GPU free
    requests: int = 0


def simulate(days: list[list[tuple[list[float], float]]], timeout: float, pool: int) -> Outcome:
    """Servers that sleep after `timeout` idle seconds, over `days`: each a list of (a student's
    request times, the load seconds of the student's model). A wake takes a GPU from `pool`
    when one is free at the request's time, else the request finds none."""
    outcome = Outcome()
    for day in days:
        # Every request of the day in time order, with whose it is.
        events = sorted((time, who) for who, (times, _load) in enumerate(day) for time in times)
        awake_until = [-math.inf] * len(day)  # when each server falls asleep (idle timeout)
        awake_since = [0.0] * len(day)
        ready_at = [0.0] * len(day)
        for time, who in events:
            outcome.requests += 1
            if time < awake_until[who]:  # awake (or waking): it answers, and stays up longer
                awake_until[who] = max(time, ready_at[who]) + timeout  # idle from its answer
                continue
            if awake_until[who] > -math.inf:  # it slept: its awake time is counted now
                outcome.gpu_hours += (awake_until[who] - awake_since[who]) / 3600
            held = sum(1 for other in range(len(day)) if awake_until[other] > time)
            if held >= pool:
                outcome.no_gpu += 1
                awake_until[who] = -math.inf
                continue
            load = day[who][1]
            outcome.wakes += 1
            outcome.waits.append(load)
            awake_since[who], ready_at[who] = time, time + load
            awake_until[who] = time + load + timeout
        for who in range(len(day)):  # the last awake time of each, to its idle timeout
            if awake_until[who] > -math.inf:
                outcome.gpu_hours += (awake_until[who] - awake_since[who]) / 3600
    return outcome


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` of 1), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def run(days: int, seed: int, assumptions: Assumptions) -> dict:
    rng = random.Random(seed)
    simulated = []
    for _ in range(days):
        models = course_models(rng, assumptions.students)
        simulated.append(
            [
                (student_day(rng, assumptions), load_seconds(MODELS[m][1], assumptions))
                for m in models
            ]
        )
    always_on = assumptions.students * (DAY_END - DAY_START) / 3600
    rows = [{"policy": "always on", "gpu_hours_per_day": always_on, "share_of_always_on": 1.0}]
    for minutes in TIMEOUTS_MINUTES:
        result = simulate(simulated, minutes * MINUTE, assumptions.pool)
        rows.append(
            {
                "policy": f"sleep after {minutes} min idle",
                "gpu_hours_per_day": result.gpu_hours / days,
                "share_of_always_on": result.gpu_hours / days / always_on,
                "wakes_per_day": result.wakes / days,
                "wake_wait_median_s": statistics.median(result.waits) if result.waits else None,
                "wake_wait_p95_s": percentile(result.waits, 0.95),
                "no_free_gpu_per_day": result.no_gpu / days,
                "requests_per_day": result.requests / days,
            }
        )
    return {"days": days, "seed": seed, "assumptions": asdict(assumptions), "rows": rows}


def table(report: dict) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| Policy | GPU-hours a day | of always on | wakes a day | wake wait median / p95 | "
        "requests finding no free GPU a day |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if row["policy"] == "always on":
            lines.append(f"| always on | {row['gpu_hours_per_day']:.0f} | 100 % | - | - | - |")
            continue
        lines.append(
            f"| {row['policy']} | {row['gpu_hours_per_day']:.0f} | "
            f"{row['share_of_always_on'] * 100:.0f} % | {row['wakes_per_day']:.0f} | "
            f"{row['wake_wait_median_s']:.0f} s / {row['wake_wait_p95_s']:.0f} s | "
            f"{row['no_free_gpu_per_day']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=200, help="simulated days (default 200)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--students", type=int, default=Assumptions.students)
    parser.add_argument("--pool", type=int, default=Assumptions.pool, help="the course's V100s")
    parser.add_argument("--out", type=Path, default=HERE / "course_day.json")
    args = parser.parse_args(argv)
    assumptions = Assumptions(students=args.students, pool=args.pool)
    report = run(args.days, args.seed, assumptions)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(report))
    print(f"\n{args.days} simulated days, seed {args.seed}; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
