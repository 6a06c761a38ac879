"""Three things a new user types that used to pass unnoticed (issue 17), as they type them:
a mistyped variable (-e and host_vars), an API key that is too short, and token limits beyond
what the model's config says it attends to.

The context length needs the model's config, which comes from the Hugging Face Hub. The sandbox
has no internet: the test serves the recorded Hub answer for TinyLlama (tests/unit/data/hub)
on this machine and points huggingface_hub at it with HF_ENDPOINT, its own setting for a Hub
mirror, so that the playbook asks "the Hub" exactly as on the ICC.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from recorded_hub import RECORDED_HUB
from recorded_hub import recorded_hub as serve_recorded_hub
from views import FAST, TOO_BIG_MODEL

from playbooks import run_playbook, write_inventory

TINYLLAMA = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"  # its config.json: max_position_embeddings 2048
RECORDED = RECORDED_HUB / TINYLLAMA.replace("/", "__")


@pytest.fixture
def inventory(tmp_path, namespace, sandbox) -> Path:
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


@pytest.mark.sandbox
def test_mistyped_variables_are_warned_about_before_the_first_write(
    inventory, namespace, sandbox, admin_client
):
    host_vars = inventory.parent / "host_vars"
    host_vars.mkdir()
    (host_vars / f"{namespace}.yml").write_text("tgi_modle_id: Qwen/Qwen2.5-0.5B-Instruct\n")
    typed = (
        "[WARNING]: unknown variable tgi_gpu_cout (from -e), ignored: did you mean tgi_gpu_count?"
    )
    in_file = (
        "[WARNING]: unknown variable tgi_modle_id (from the inventory or the playbook), ignored: "
        "did you mean tgi_model_id?"
    )

    # A run the capacity check stops (the model is too big) writes nothing: it warned before.
    refused = run_playbook(
        "deploy.yml", inventory, extra_vars={"tgi_gpu_cout": "2", "tgi_model_id": TOO_BIG_MODEL}
    )
    assert refused.rc != 0 and "refused (model-fits)" in refused.output, refused.output
    assert refused.output.count(typed) == 1 and refused.output.count(in_file) == 1
    assert sandbox.student_writes(namespace) == []

    run = run_playbook("deploy.yml", inventory, extra_vars={"tgi_gpu_cout": "2"})

    assert run.rc == 0, run.output  # a warning, not a refusal
    assert run.output.count(typed) == 1 and run.output.count(in_file) == 1, run.output
    # And indeed ignored: the default of one GPU and the inventory's model were deployed.
    tgi = client.AppsV1Api(admin_client).read_namespaced_deployment("tgi", namespace)
    container = tgi.spec.template.spec.containers[0]
    assert container.resources.requests["nvidia.com/gpu"] == "1"
    assert "Qwen/Qwen2.5-0.5B-Instruct" not in container.args


# The roles check their variables one after the other: each key in a run of its own.
@pytest.mark.sandbox
@pytest.mark.parametrize("name", ["tgi_api_key", "open_webui_secret_key"])
def test_a_short_key_is_refused_before_any_write_without_showing_it(
    name, inventory, namespace, sandbox
):
    key = "Short-Key-1234"  # 14 characters

    run = run_playbook("deploy.yml", inventory, extra_vars={name: key})

    assert run.rc != 0
    assert f"- {name}: its value is not allowed: a key of at least 16 characters" in run.output
    assert key not in run.output
    assert sandbox.student_writes(namespace) == []


@pytest.fixture
def recorded_hub() -> Iterator[tuple[dict[str, str], list[str]]]:
    with serve_recorded_hub() as served:
        yield served


@pytest.mark.sandbox
def test_token_limits_beyond_the_model_s_context_are_refused_before_any_write(
    inventory, namespace, sandbox, recorded_hub
):
    env, asked = recorded_hub
    typed = {"tgi_model_id": TINYLLAMA, "tgi_max_total_tokens": "4096", "icc_hub_lookup": "true"}
    assert json.loads((RECORDED / "config.json").read_text())["max_position_embeddings"] == 2048

    run = run_playbook("deploy.yml", inventory, extra_vars=typed, env=env)

    assert run.rc != 0
    assert f"/{TINYLLAMA}/resolve/main/config.json" in asked  # the config came from "the Hub"
    # The role's default tgi_max_input_tokens (2048) leaves no token for an answer either.
    assert (
        "- context-length: tgi_max_total_tokens 4096 (at most 2048) and tgi_max_input_tokens "
        f"2048 (at most 2047: one for the answer): {TINYLLAMA} attends to at most 2048 tokens "
        "(max_position_embeddings in its config)"
    ) in run.output, run.output
    assert "tgi_ignore_rules: [context-length]" in run.output
    assert sandbox.student_writes(namespace) == []

    # An expert's override, as for the other rules: the check lets it through with a warning.
    overridden = run_playbook(
        "deploy.yml",
        inventory,
        "--check",
        extra_vars={**typed, "tgi_ignore_rules": "context-length"},
        env=env,
    )
    assert overridden.rc == 0, overridden.output
    assert "context-length ignored (tgi_ignore_rules)" in overridden.output
    assert sandbox.student_writes(namespace) == []
