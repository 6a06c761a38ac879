"""The course page status.yml writes with icc_status_html (course_status.course_page): what it
shows of each namespace and the course's GPU totals, escaped, and nothing fetched from
elsewhere. (The real browser opens one in tests/integration/test_course_page.py.)"""

from __future__ import annotations

import re

from ansible_collections.haw.icc.plugins.module_utils.operations.course_status import (
    course_page,
    course_totals,
)

READY_VLLM = {
    "namespace": "wabc123-default",
    "tgi": {
        "state": "ready",
        "engine": "vllm",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "gpu": {"count": 2, "type": "gpu-tesla-v100"},
        "node": "icc-gpu-v100-1",
    },
    "open_webui": {"state": "ready"},
}
ASLEEP = {
    "namespace": "wdef456-default",
    "tgi": {
        "state": "asleep",
        "engine": "tgi",
        "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "gpu": {"count": 1, "type": "gpu-tesla-v100"},
        "asleep_since": "2026-12-05T09:12:00Z",
        "last_request": "2026-12-05T08:42:00Z",
    },
    "open_webui": {"state": "ready"},
}
CRASHING = {
    "namespace": "wghi789-default",
    "tgi": {
        "state": "failed",
        "engine": "tgi",
        "model": "<script>alert(1)</script>",
        "gpu": {"count": 1, "type": "gpu-tesla-v100"},
        "problem": "pod tgi-1: CUDA out of memory (restart 3)",
        "cause": "the model needs 29.6 GiB per GPU",
        "fix": ["scale.yml -e tgi_gpu_count=2"],
    },
    "open_webui": {"state": "ready"},
}
PENDING = {
    "namespace": "wjkl000-default",
    "tgi": {"state": "pending", "gpu": {"count": 4, "type": "gpu-tesla-v100"}},
    "open_webui": {"state": "ready"},
}
UNREADABLE = {"namespace": "wmno111-default", "error": "Cannot connect: cluster unreachable"}
COURSE = [READY_VLLM, ASLEEP, CRASHING, PENDING, UNREADABLE]


def test_gpus_held_are_those_on_nodes_and_asleep_ones_given_back():
    # Held: 2 (ready) + 1 (crash-looping, still on its node); the pending pod holds none yet.
    assert course_totals(COURSE) == {"namespaces": 5, "gpus_held": 3, "gpus_asleep": 1}


def test_each_namespace_has_its_row_with_what_a_lecturer_looks_for():
    page = course_page(COURSE, "2026-12-05T10:00:00Z")
    rows = re.findall(r"<tr>(.*?)</tr>", page)[1:]  # after the header
    assert len(rows) == 5
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    ready = cells[0]
    assert "READY" in ready[1] and ready[2:6] == [
        "vllm",
        "Qwen/Qwen2.5-7B-Instruct",
        "2 x gpu-tesla-v100",
        "icc-gpu-v100-1",
    ]
    assert "ASLEEP" in cells[1][1] and cells[1][6:8] == [
        "2026-12-05T09:12:00Z",
        "2026-12-05T08:42:00Z",
    ]
    assert "pod tgi-1: CUDA out of memory (restart 3): the model needs 29.6 GiB" in cells[2][10]
    assert '<div class="fix">fix: scale.yml -e tgi_gpu_count=2</div>' in cells[2][10]
    assert "Cannot connect: cluster unreachable" in cells[4][10]
    assert "<b>3</b>GPUs held" in page and "<b>1</b>GPUs given back" in page


def test_it_is_escaped_and_needs_nothing_from_elsewhere():
    page = course_page(COURSE, "2026-12-05T10:00:00Z")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for outside in ("http://", "https://", "<link", "<img", "@import", "url("):
        assert outside not in page
