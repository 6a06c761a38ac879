"""The course page (status.yml -e icc_status_html=...), as a lecturer opens it: written by the
playbook for a course of two namespaces in the sandbox (one serving, one not deployed), then
opened from the file in the real Chromium with every network request refused; what it shows is
read from the rendered page, and a screenshot goes into the test artefacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from open_webui_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from playwright.sync_api import sync_playwright
from views import FAST

from playbooks import REPO_ROOT, run_playbook, write_inventory

ARTEFACTS = Path(os.environ.get("ICC_TEST_ARTEFACTS", REPO_ROOT / "test-artefacts"))
pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]


def test_the_course_page_shows_each_namespace_and_the_gpus_in_a_real_browser(
    tmp_path, sandbox, namespace, second_namespace
):
    inventory = write_inventory(
        tmp_path, [namespace, second_namespace], sandbox.student_kubeconfig, **FAST
    )
    deployed = run_playbook("deploy.yml", inventory, "--limit", namespace)
    assert deployed.rc == 0, deployed.output
    seen = run_playbook("status.yml", inventory, extra_vars={"icc_status_html": "course.html"},
                        cwd=tmp_path)  # fmt: skip
    page_file = tmp_path / "course.html"
    assert page_file.is_file(), seen.output  # relative to where the playbook ran

    asked = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("file://")
                    else (asked.append(route.request.url), route.abort())
                ),
            )
            page.goto(page_file.as_uri())
            rows = {
                cells[0]: cells
                for cells in (
                    [cell.inner_text().strip() for cell in row.locator("td").all()]
                    for row in page.locator("tbody tr").all()
                )
            }
            held = page.locator("#gpus-held b").inner_text()
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTEFACTS / "course-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert asked == []  # nothing from a server or the internet
    assert set(rows) == {namespace, second_namespace}
    serving = rows[namespace]
    assert serving[1:5] == ["READY", "tgi", "Qwen/Qwen2.5-1.5B-Instruct", "1 x gpu-tesla-v100"]
    assert serving[5].startswith("icc-gpu-v100-")
    missing = rows[second_namespace]
    assert missing[1] == "ABSENT"
    assert "tgi is not deployed in this namespace" in missing[10]
    assert f"fix: ansible-playbook haw.icc.deploy -l {second_namespace}" in missing[10]
    assert held == "1"
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot of the course page: {shot}")
