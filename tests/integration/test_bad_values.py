"""Values typed on the command line, as users type them: the good ones work, the bad ones are
refused before a single write, naming the variable, in a few lines.

Each bad value runs its own ansible-playbook against the sandbox and the API server's audit log
of the student's write requests must stay empty for the namespace.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from views import FAST, managed_objects

from playbooks import run_playbook, write_inventory

# (playbook, extra vars as typed, the variable the message must name)
BAD_VALUES = {
    "gpu count as a word": ("deploy.yml", {"tgi_gpu_count": "two"}, "tgi_gpu_count"),
    "negative gpu count": ("deploy.yml", {"tgi_gpu_count": "-1"}, "tgi_gpu_count"),
    "fractional gpu count": ("deploy.yml", {"tgi_gpu_count": "1.5"}, "tgi_gpu_count"),
    "more gpus than a node has": ("deploy.yml", {"tgi_gpu_count": "5"}, "tgi_gpu_count"),
    "unknown gpu type": ("deploy.yml", {"tgi_gpu_type": "gpu-tesla-k80"}, "tgi_gpu_type"),
    "service port 0": ("deploy.yml", {"tgi_service_port": "0"}, "tgi_service_port"),
    "service port 70000": ("deploy.yml", {"tgi_service_port": "70000"}, "tgi_service_port"),
    "webui port 0": ("deploy.yml", {"open_webui_service_port": "0"}, "open_webui_service_port"),
    "webui port 70000": (
        "deploy.yml",
        {"open_webui_service_port": "70000"},
        "open_webui_service_port",
    ),
    "container port": ("deploy.yml", {"tgi_container_port": "65536"}, "tgi_container_port"),
    # Refused after the TGI Deployment rolled, before: the port must stop the run before that.
    "a real change with a bad port": (
        "deploy.yml",
        {"tgi_max_total_tokens": "3500", "tgi_service_port": "70000"},
        "tgi_service_port",
    ),
    "ingress host with a space": (
        "deploy.yml",
        {"tgi_ingress_enabled": "true", "tgi_ingress_host": "my host"},
        "tgi_ingress_host",
    ),
    "ingress host upper case": (
        "deploy.yml",
        {"open_webui_ingress_enabled": "true", "open_webui_ingress_host": "Chat.Example.org"},
        "open_webui_ingress_host",
    ),
    "ingress without host": ("deploy.yml", {"tgi_ingress_enabled": "true"}, "tgi_ingress_host"),
    "boolean that is none": ("deploy.yml", {"tgi_ingress_enabled": "maybe"}, "tgi_ingress_enabled"),
    "memory fraction above one": (
        "deploy.yml",
        {"tgi_cuda_memory_fraction": "1.5"},
        "tgi_cuda_memory_fraction",
    ),
    "memory fraction a word": (
        "deploy.yml",
        {"tgi_cuda_memory_fraction": "most"},
        "tgi_cuda_memory_fraction",
    ),
    "input not below total": (
        "deploy.yml",
        {"tgi_max_input_tokens": "4096", "tgi_max_total_tokens": "4096"},
        "tgi_max_input_tokens",
    ),
    "negative cache size": ("deploy.yml", {"tgi_cache_size": "-5Gi"}, "tgi_cache_size"),
    "size in GB": ("deploy.yml", {"open_webui_data_size": "5GB"}, "open_webui_data_size"),
    "request above limit": ("deploy.yml", {"tgi_memory_request": "64Gi"}, "tgi_memory_request"),
    "api key with a line break": ("deploy.yml", {"tgi_api_key": "first\nsecond"}, "tgi_api_key"),
    "api key with a space": ("deploy.yml", {"tgi_api_key": "two words"}, "tgi_api_key"),
    "model id with a trailing line break": (
        "deploy.yml",
        {"tgi_model_id": "Qwen/Qwen2.5-1.5B-Instruct\n"},
        "tgi_model_id",
    ),
    "quantity with a trailing line break": (
        "deploy.yml",
        {"tgi_memory_limit": "32Gi\n"},
        "tgi_memory_limit",
    ),
    "namespace not a DNS label": (
        "deploy.yml",
        {"icc_namespace": "Bad_Namespace"},
        "icc_namespace",
    ),
    "service name starting with a digit": ("deploy.yml", {"tgi_name": "1tgi"}, "tgi_name"),
    "unknown dtype": ("deploy.yml", {"tgi_dtype": "float32"}, "tgi_dtype"),
    "vLLM flag": (
        "deploy.yml",
        {"tgi_extra_args": "--max-parallel-loading-workers=2"},
        "tgi_extra_args",
    ),
    "startup timeout too short": (
        "deploy.yml",
        {"tgi_startup_timeout_seconds": "5"},
        "tgi_startup_timeout_seconds",
    ),
    "admin e-mail without password": (
        "deploy.yml",
        {"open_webui_admin_email": "admin@example.org"},
        "open_webui_admin_password",
    ),
    "malformed model": ("change_model.yml", {"tgi_model": "a/b/c"}, "tgi_model_id"),
    "model with a line break": ("change_model.yml", {"tgi_model": "org/model\n"}, "tgi_model_id"),
    "revision with a space": (
        "change_model.yml",
        {"tgi_model": "Qwen/Qwen2.5-0.5B-Instruct", "tgi_revision": "main branch"},
        "tgi_model_revision",
    ),
    "total tokens a fraction": (
        "change_model.yml",
        {"tgi_model": "Qwen/Qwen2.5-0.5B-Instruct", "tgi_max_total_tokens": "3.5"},
        "tgi_max_total_tokens",
    ),
    "dtype with quantize": (
        "change_model.yml",
        {"tgi_model": "Qwen/Qwen2.5-0.5B-Instruct", "tgi_dtype": "float16", "tgi_quantize": "awq"},
        "tgi_dtype",  # the line names both: "tgi_dtype (...) and tgi_quantize (...)"
    ),
    "switch with a bad port": (
        "change_model.yml",
        {"tgi_model": "Qwen/Qwen2.5-0.5B-Instruct", "tgi_service_port": "70000"},
        "tgi_service_port",
    ),
}


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


@pytest.mark.sandbox
@pytest.mark.parametrize(("playbook", "typed", "variable"), BAD_VALUES.values(), ids=BAD_VALUES)
def test_a_bad_value_is_refused_naming_the_variable_before_any_write(
    playbook, typed, variable, inventory, namespace, sandbox
):
    run = run_playbook(playbook, inventory, extra_vars=typed)

    assert run.rc != 0
    # A line of the refusal that starts with the variable (not merely mentions it).
    refusal = [line for line in run.output.splitlines() if line.lstrip("- ").startswith(variable)]
    assert refusal, run.output
    assert "Traceback" not in run.output
    assert "argument_spec_data" not in run.output  # no dump of the argument spec
    assert len(run.output) < 8000, run.output  # the reason, not pages around it
    assert sandbox.student_writes(namespace) == []
    for value in typed.values():
        if variable == "tgi_api_key":  # a key, even a bad one, is never shown
            assert value not in run.output


@pytest.mark.sandbox
def test_what_users_type_is_what_the_cluster_gets(inventory, namespace, admin_client):
    typed = {
        "tgi_model_id": "bigscience/bloom-560m",  # shards on a V100
        "tgi_gpu_count": "2",
        "tgi_cuda_memory_fraction": "0.85",
        "tgi_max_total_tokens": "3000",
        "tgi_ingress_enabled": "true",
        "tgi_ingress_host": "llm.example.org",
        "tgi_network_policy_enabled": "false",
    }
    run = run_playbook("deploy.yml", inventory, extra_vars=typed)
    assert run.rc == 0, run.output

    apps, net = client.AppsV1Api(admin_client), client.NetworkingV1Api(admin_client)
    container = apps.read_namespaced_deployment("tgi", namespace).spec.template.spec.containers[0]
    assert container.resources.requests["nvidia.com/gpu"] == "2"
    assert container.args[container.args.index("--num-shard") + 1] == "2"
    assert container.args[container.args.index("--cuda-memory-fraction") + 1] == "0.85"
    assert container.args[container.args.index("--max-total-tokens") + 1] == "3000"
    assert "Ingress/tgi" in managed_objects(admin_client, namespace)
    assert net.list_namespaced_network_policy(namespace).items == []
    assert "on 2 x gpu-tesla-v100 (tensor-sharding, ready)" in run.output

    # 'false' typed on the command line is false, not a non-empty (true) string.
    off = run_playbook(
        "deploy.yml", inventory, extra_vars={**typed, "tgi_ingress_enabled": "false"}
    )
    assert off.rc == 0, off.output
    assert "Ingress/tgi" not in managed_objects(admin_client, namespace)


@pytest.mark.sandbox
def test_a_volume_that_would_shrink_is_refused_before_any_write(inventory, namespace, sandbox):
    assert run_playbook("deploy.yml", inventory).rc == 0  # tgi_cache_size 1Gi (FAST)
    writes = len(sandbox.student_writes(namespace))

    run = run_playbook(
        "deploy.yml",
        inventory,
        extra_vars={"tgi_cache_size": "500Mi", "tgi_api_key": "a-new-key-of-24-chars-ok"},
    )

    assert run.rc != 0
    assert "tgi_cache_size: 500Mi for volume tgi-cache, which has 1Gi: a volume cannot shrink" in (
        run.output
    )
    # Not even the new key was stored: nothing is half-written.
    assert len(sandbox.student_writes(namespace)) == writes
