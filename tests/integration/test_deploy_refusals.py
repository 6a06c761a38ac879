"""Bad input is refused before the first write, naming the variable; manifests are valid."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from test_deploy import FAST, managed_objects

from playbooks import run_playbook, write_inventory

BAD_INPUTS = {
    "negative GPU count": ({"tgi_gpu_count": -1}, "tgi_gpu_count"),
    "fractional GPU count": ({"tgi_gpu_count": 1.5}, "tgi_gpu_count"),
    "more GPUs than a node has": ({"tgi_gpu_count": 5}, "tgi_gpu_count"),
    "unknown GPU type": ({"tgi_gpu_type": "gpu-tesla-k80"}, "tgi_gpu_type"),
    "dtype with quantize": ({"tgi_dtype": "float16", "tgi_quantize": "awq"}, "tgi_quantize"),
    "unknown quantize": ({"tgi_quantize": "int3"}, "tgi_quantize"),
    "unknown dtype": ({"tgi_dtype": "float32"}, "tgi_dtype"),
    "input not below total": (
        {"tgi_max_input_tokens": 4096, "tgi_max_total_tokens": 4096},
        "tgi_max_input_tokens",
    ),
    "prefill below input": ({"tgi_max_batch_prefill_tokens": 1024}, "tgi_max_batch_prefill_tokens"),
    "memory fraction zero": ({"tgi_cuda_memory_fraction": 0}, "tgi_cuda_memory_fraction"),
    "memory fraction above one": ({"tgi_cuda_memory_fraction": 1.5}, "tgi_cuda_memory_fraction"),
    "namespace not a DNS label": ({"icc_namespace": "Bad_Namespace"}, "icc_namespace"),
    "malformed model id": ({"tgi_model_id": "a/b/c"}, "tgi_model_id"),
    "negative size": ({"tgi_cache_size": "-5Gi"}, "tgi_cache_size"),
    "malformed size": ({"open_webui_data_size": "lots"}, "open_webui_data_size"),
    "vLLM flag in extra args": (
        {"tgi_extra_args": ["--max-parallel-loading-workers", "2"]},
        "tgi_extra_args",
    ),
}


@pytest.mark.sandbox
@pytest.mark.parametrize(("bad", "variable"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_before_any_write(
    bad, variable, tmp_path, sandbox, namespace, admin_client
):
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    run = run_playbook("deploy.yml", inventory, extra_vars=bad)
    assert run.rc != 0
    assert variable in run.output
    assert "Traceback" not in run.output
    assert managed_objects(admin_client, namespace) == set()


@pytest.mark.sandbox
def test_missing_kubeconfig_gives_a_readable_message(tmp_path, namespace):
    inventory = write_inventory(tmp_path, [namespace], tmp_path / "nowhere.kubeconfig", **FAST)
    run = run_playbook("deploy.yml", inventory)
    assert run.rc != 0
    assert "No kubeconfig at" in run.output
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_unreachable_cluster_gives_a_readable_message(tmp_path, namespace, sandbox):
    config = yaml.safe_load(sandbox.student_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    run = run_playbook("deploy.yml", write_inventory(tmp_path, [namespace], unreachable, **FAST))
    assert run.rc != 0
    assert "Cannot reach the cluster at https://127.0.0.1:1" in run.output
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_an_unpinned_image_is_accepted_with_a_warning(tmp_path, namespace, sandbox):
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    image = "ghcr.io/huggingface/text-generation-inference:latest"
    run = run_playbook("deploy.yml", inventory, "--check", extra_vars={"tgi_image": image})
    assert run.rc == 0, run.output
    assert "is not pinned to a version" in run.output


def test_rendered_manifests_validate_for_kubernetes_1_25_and_the_newest(tmp_path):
    """The manifests of the example ICC inventory, rendered without a cluster."""
    from playbooks import REPO_ROOT

    out = tmp_path / "rendered"
    run = run_playbook(
        "render.yml",
        REPO_ROOT / "inventories" / "icc" / "hosts.yml",
        extra_vars={"icc_render_dir": str(out)},
    )
    assert run.rc == 0, run.output
    manifests = sorted(out.glob("*/*.yml"))
    kinds = {yaml.safe_load(path.read_text())["kind"] for path in manifests}
    assert kinds == {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"}
    for path in manifests:
        for version in ("1.25", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(yaml.safe_load(path.read_text()), version, strict=True)
