"""The vLLM pod computed from the same settings as TGI's (workload/vllm_workload.py).

Expected values are written out: the image, `vllm serve`'s arguments, the env, /dev/shm.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import tgi_workload
from ansible_collections.haw.icc.plugins.module_utils.workload.vllm_workload import vllm_workload
from test_tgi_workload import BASE  # the same namespace, as TGI's pod tests have it

KEY = {
    "name": "VLLM_API_KEY",
    "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
}


def pod(**changes: Any) -> dict[str, Any]:
    return vllm_workload({**BASE, **changes})


def test_one_v100_runs_the_pinned_image_in_float16_with_every_choice_explicit():
    got = pod()
    assert got["image"] == "docker.io/vllm/vllm-openai:v0.14.1"
    assert got["args"] == [
        "Qwen/Qwen2.5-1.5B-Instruct",
        "--served-model-name", "Qwen/Qwen2.5-1.5B-Instruct",
        "--dtype", "half",
        "--max-model-len", "4096",
        "--tensor-parallel-size", "1",
        "--gpu-memory-utilization", "0.9",
        "--download-dir", "/data/hub",
        "--host", "0.0.0.0",
        "--port", "80",
    ]  # fmt: skip
    assert got["env"] == [
        {"name": "HF_HOME", "value": "/data"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        KEY,
    ]
    assert "tgi-api-key" not in " ".join(got["args"])  # the key never is an argument
    assert got["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
    }
    assert got["shm_size"] == "1Gi"


def test_two_v100s_are_tensor_parallel_with_nccl_shm_and_no_custom_all_reduce():
    got = pod(tgi_gpu_count=2, tgi_max_total_tokens=8192, tgi_model_revision="a1b2c3")
    args = got["args"]
    assert args[:3] == ["Qwen/Qwen2.5-1.5B-Instruct", "--revision", "a1b2c3"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--max-model-len") + 1] == "8192"
    assert args[-1] == "--disable-custom-all-reduce"
    assert {"name": "NCCL_DEBUG", "value": "WARN"} in got["env"]
    assert got["shm_size"] == "2Gi"
    assert got["multi_gpu"]["mode"] == "tensor-parallel"
    # A100s (8.0) keep the checkpoint's dtype and vLLM's custom all-reduce.
    a100 = pod(tgi_gpu_type="gpu-tesla-a100", tgi_gpu_count=2)["args"]
    assert a100[a100.index("--dtype") + 1] == "auto" and "--disable-custom-all-reduce" not in a100


def test_the_settings_users_know_keep_their_meaning_beside_tgis():
    settings = {
        **BASE,
        "tgi_gpu_count": 2,
        "tgi_hf_token_secret": "hf-token",
        "tgi_container_port": 8080,
    }
    tgi, vllm = tgi_workload(settings), vllm_workload(settings)
    for part in ("resources", "tolerations", "gpu_count"):
        assert vllm[part] == tgi[part], part
    # TGI splits Qwen2's layers on V100s (no NCCL, base /dev/shm); vLLM is tensor parallel.
    assert (tgi["shm_size"], vllm["shm_size"]) == ("1Gi", "2Gi")
    assert vllm["args"][vllm["args"].index("--port") + 1] == "8080"
    token = {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    }
    assert token in tgi["env"] and token in vllm["env"]


def test_what_vllm_cannot_run_is_refused_naming_the_variable():
    with pytest.raises(TgiSettingsError) as refused:
        pod(tgi_gpu_count=0)
    assert "icc_engine vllm needs GPUs" in str(refused.value)
    with pytest.raises(TgiSettingsError) as refused:
        pod(tgi_quantize="eetq")
    assert "tgi_quantize: 'eetq' has no vLLM kernels here" in str(refused.value)
    h100 = {"memory_gib": 80, "compute_capability": "9.0", "gpus_per_node": 8, "tgi_image": "t:1"}
    with pytest.raises(TgiSettingsError) as refused:
        vllm_workload({**BASE, "tgi_gpu_type": "gpu-h100"}, {"gpu-h100": h100})
    assert "GPU type gpu-h100 has no vllm_image in the catalog" in str(refused.value)


def test_an_on_the_fly_quantization_takes_vllms_name():
    args = pod(tgi_quantize="bitsandbytes-nf4")["args"]
    assert args[args.index("--quantization") + 1] == "bitsandbytes"
