"""TGI's command line from the tgi_* settings (plugins/module_utils/workload/tgi_settings.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.filter import tgi as tgi_filter
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import (
    DTYPES,
    QUANTIZE_METHODS,
)
from ansible_collections.haw.icc.plugins.module_utils.workload import (
    tgi_settings as tgi_settings_module,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    SETTINGS,
    TgiSettings,
    TgiSettingsError,
    check_tgi_settings,
    is_sealed,
    model_settings_errors,
    sealed,
    validate_tgi_settings,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import tgi_workload

# BLOOM shards on a V100 too (tensor sharding): --num-shard N follows tgi_gpu_count here;
# the other multi-GPU modes are test_tgi_workload.py's.
MODEL = "bigscience/bloom-1b7"
BASE: dict[str, Any] = {
    "tgi_model_id": MODEL,
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_api_key_secret": "tgi-api-key",
}
API_KEY_ENV = {
    "name": "API_KEY",
    "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
}
BASE_ENV = [
    {"name": "HOSTNAME", "value": "0.0.0.0"},
    {"name": "PORT", "value": "80"},
    {"name": "USAGE_STATS", "value": "off"},
    {"name": "HF_HOME", "value": "/data"},
    API_KEY_ENV,
]


def settings(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def env_names(container: dict) -> list[str]:
    return [entry["name"] for entry in container["env"]]


# --- argument building: (settings changes, expected args) ------------------------------------

ARGS = {
    "single-gpu": ({}, ["--model-id", MODEL, "--num-shard", "1"]),
    "four-gpus": ({"tgi_gpu_count": 4}, ["--model-id", MODEL, "--num-shard", "4"]),
    "cpu-only": ({"tgi_gpu_count": 0}, ["--model-id", MODEL]),
    "cpu-ignores-gpu-type": (
        {"tgi_gpu_count": 0, "tgi_gpu_type": "no-such-gpu"},
        ["--model-id", MODEL],
    ),
    "v100s-two-gpus": (
        {"tgi_gpu_type": "gpu-tesla-v100s", "tgi_gpu_count": 2},
        ["--model-id", MODEL, "--num-shard", "2"],
    ),
    "model-without-org": ({"tgi_model_id": "gpt2"}, ["--model-id", "gpt2", "--num-shard", "1"]),
    "dtype": (
        {"tgi_dtype": "bfloat16"},
        ["--model-id", MODEL, "--num-shard", "1", "--dtype", "bfloat16"],
    ),
    "quantize": (
        {"tgi_quantize": "bitsandbytes-nf4"},
        ["--model-id", MODEL, "--num-shard", "1", "--quantize", "bitsandbytes-nf4"],
    ),
    "revision": (
        {"tgi_model_revision": "refs/pr/2"},
        ["--model-id", MODEL, "--revision", "refs/pr/2", "--num-shard", "1"],
    ),
    "token-limits": (
        {
            "tgi_max_input_tokens": 1024,
            "tgi_max_total_tokens": 2048,
            "tgi_max_batch_prefill_tokens": 1024,
        },
        [
            "--model-id",
            MODEL,
            "--num-shard",
            "1",
            "--max-input-tokens",
            "1024",
            "--max-total-tokens",
            "2048",
            "--max-batch-prefill-tokens",
            "1024",
        ],
    ),
    "only-max-total-tokens": (
        {"tgi_max_total_tokens": 4096},
        ["--model-id", MODEL, "--num-shard", "1", "--max-total-tokens", "4096"],
    ),
    "concurrency-and-memory-fraction": (
        {"tgi_max_concurrent_requests": 16, "tgi_cuda_memory_fraction": 0.9},
        [
            "--model-id",
            MODEL,
            "--num-shard",
            "1",
            "--max-concurrent-requests",
            "16",
            "--cuda-memory-fraction",
            "0.9",
        ],
    ),
    "memory-fraction-one-as-int": (
        {"tgi_cuda_memory_fraction": 1},
        ["--model-id", MODEL, "--num-shard", "1", "--cuda-memory-fraction", "1.0"],
    ),
    "extra-args-last-as-given": (
        {"tgi_extra_args": ["--trust-remote-code", "--max-batch-size", "8", "--speculate=2"]},
        [
            "--model-id",
            MODEL,
            "--num-shard",
            "1",
            "--trust-remote-code",
            "--max-batch-size",
            "8",
            "--speculate=2",
        ],
    ),
    "repeatable-extra-flag": (
        {"tgi_extra_args": ["--cors-allow-origin", "a", "--cors-allow-origin=b"]},
        [
            "--model-id",
            MODEL,
            "--num-shard",
            "1",
            "--cors-allow-origin",
            "a",
            "--cors-allow-origin=b",
        ],
    ),
    "optional-settings-null-are-absent": (
        {
            "tgi_model_revision": None,
            "tgi_dtype": None,
            "tgi_quantize": None,
            "tgi_max_input_tokens": None,
            "tgi_max_total_tokens": None,
            "tgi_max_batch_prefill_tokens": None,
            "tgi_cuda_memory_fraction": None,
            "tgi_max_concurrent_requests": None,
            "tgi_hf_token_secret": None,
            "tgi_extra_args": None,
            "tgi_nccl_env": None,
        },
        ["--model-id", MODEL, "--num-shard", "1"],
    ),
}


@pytest.mark.parametrize(("changes", "expected"), ARGS.values(), ids=ARGS.keys())
def test_args(changes: dict, expected: list[str]) -> None:
    assert tgi_workload(settings(**changes))["args"] == expected


def test_defaults_apply_to_absent_settings() -> None:
    container = tgi_workload({"tgi_model_id": MODEL, "tgi_api_key_secret": "tgi-api-key"})
    assert container["args"] == ["--model-id", MODEL, "--num-shard", "1"]
    assert container["env"] == BASE_ENV


def test_never_sharded_flag_and_no_num_shard_without_gpus() -> None:
    for count in range(5):
        args = tgi_workload(settings(tgi_gpu_count=count))["args"]
        assert "--sharded" not in args
        assert ("--num-shard" in args) == (count >= 1)


def test_args_are_strings() -> None:
    changes = {"tgi_cuda_memory_fraction": 0.5, "tgi_max_total_tokens": 10, "tgi_gpu_count": 2}
    container = tgi_workload(settings(**changes))
    assert all(type(arg) is str for arg in container["args"])
    assert all(type(e["value"]) is str for e in container["env"] if "value" in e)


# --- environment: (settings changes, expected env) -------------------------------------------

NCCL_QUIET = {"name": "NCCL_DEBUG", "value": "WARN"}
ENV = {
    "single-gpu": ({}, BASE_ENV),
    "cpu-only-no-nccl": ({"tgi_gpu_count": 0, "tgi_nccl_env": {"NCCL_DEBUG": "INFO"}}, BASE_ENV),
    "single-gpu-no-nccl": ({"tgi_gpu_count": 1, "tgi_nccl_env": {"NCCL_DEBUG": "INFO"}}, BASE_ENV),
    "four-gpus-quiet-nccl": ({"tgi_gpu_count": 4}, [*BASE_ENV, NCCL_QUIET]),
    "nccl-overrides-sorted": (
        {
            "tgi_gpu_count": 2,
            "tgi_nccl_env": {"NCCL_P2P_DISABLE": "1", "NCCL_DEBUG": "INFO", "NCCL_IB_DISABLE": "1"},
        },
        [
            *BASE_ENV,
            {"name": "NCCL_DEBUG", "value": "INFO"},
            {"name": "NCCL_IB_DISABLE", "value": "1"},
            {"name": "NCCL_P2P_DISABLE", "value": "1"},
        ],
    ),
    "hf-token-from-secret": (
        {"tgi_hf_token_secret": "hf-token"},
        [
            *BASE_ENV,
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
            },
        ],
    ),
    "port-and-cache-path": (
        {"tgi_container_port": 8080, "tgi_cache_mount_path": "/models"},
        [
            {"name": "HOSTNAME", "value": "0.0.0.0"},
            {"name": "PORT", "value": "8080"},
            {"name": "USAGE_STATS", "value": "off"},
            {"name": "HF_HOME", "value": "/models"},
            API_KEY_ENV,
        ],
    ),
}


@pytest.mark.parametrize(("changes", "expected"), ENV.values(), ids=ENV.keys())
def test_env(changes: dict, expected: list[dict]) -> None:
    assert tgi_workload(settings(**changes))["env"] == expected


def test_secrets_are_referenced_never_inlined() -> None:
    container = tgi_workload(settings(tgi_hf_token_secret="hf-token", tgi_gpu_count=2))
    by_name = {entry["name"]: entry for entry in container["env"]}
    for name in ("API_KEY", "HF_TOKEN"):
        assert set(by_name[name]) == {"name", "valueFrom"}


FULL = settings(
    tgi_model_revision="main",
    tgi_gpu_count=4,
    tgi_dtype="float16",
    tgi_max_input_tokens=1000,
    tgi_max_total_tokens=2000,
    tgi_max_batch_prefill_tokens=4096,
    tgi_cuda_memory_fraction=0.95,
    tgi_max_concurrent_requests=32,
    tgi_nccl_env={"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO", "NCCL_ALGO": "Ring"},
    tgi_hf_token_secret="hf-token",
    tgi_extra_args=["--json-output"],
)


def test_deterministic_output() -> None:
    first = tgi_workload(FULL)
    reordered = dict(reversed(list(copy.deepcopy(FULL).items())))
    reordered["tgi_nccl_env"] = dict(reversed(list(FULL["tgi_nccl_env"].items())))
    assert tgi_workload(FULL) == first
    assert tgi_workload(reordered) == first


def test_does_not_change_its_input() -> None:
    before = copy.deepcopy(FULL)
    tgi_workload(FULL)
    validate_tgi_settings(FULL)
    assert before == FULL


def test_keys_without_tgi_prefix_are_ignored() -> None:
    extra = settings(__tgi_internal=1, icc_namespace="w-default", open_webui_port=8080)
    assert tgi_workload(extra) == tgi_workload(settings())


def test_valid_settings_have_no_errors() -> None:
    assert validate_tgi_settings(FULL) == []


# --- bad inputs: (settings changes, variable named, words of the rule or allowed values) -----

BAD = {
    "gpu-count-negative": ({"tgi_gpu_count": -1}, "tgi_gpu_count", ["integer >= 0"]),
    "gpu-count-string": ({"tgi_gpu_count": "2"}, "tgi_gpu_count", ["'2'", "integer >= 0"]),
    "gpu-count-float": ({"tgi_gpu_count": 1.5}, "tgi_gpu_count", ["1.5", "integer >= 0"]),
    "gpu-count-bool": ({"tgi_gpu_count": True}, "tgi_gpu_count", ["True", "integer >= 0"]),
    "gpu-count-above-node": ({"tgi_gpu_count": 5}, "tgi_gpu_count", ["5", "0..4"]),
    "gpu-type-unknown": (
        {"tgi_gpu_type": "gpu-tesla-k80"},
        "tgi_gpu_type",
        ["gpu-tesla-k80", "gpu-tesla-a100, gpu-tesla-v100, gpu-tesla-v100s", "icc_gpu_catalog"],
    ),
    "gpu-type-cpu-with-gpus": (
        {"tgi_gpu_type": "cpu"},
        "tgi_gpu_type",
        ["'cpu'", "tgi_gpu_count: 0", "gpu-tesla-v100"],
    ),
    "dtype-with-quantize": (
        {"tgi_dtype": "float16", "tgi_quantize": "awq"},
        "tgi_dtype",
        ["tgi_quantize", "cannot both be set"],
    ),
    "dtype-unknown": ({"tgi_dtype": "float32"}, "tgi_dtype", ["'float32'", *DTYPES]),
    "quantize-unknown": ({"tgi_quantize": "int4"}, "tgi_quantize", ["'int4'", *QUANTIZE_METHODS]),
    "quantize-empty-string": ({"tgi_quantize": ""}, "tgi_quantize", ["''", "or null"]),
    "max-input-equals-total": (
        {"tgi_max_input_tokens": 2048, "tgi_max_total_tokens": 2048},
        "tgi_max_input_tokens",
        ["2048", "less than tgi_max_total_tokens"],
    ),
    "max-input-above-total": (
        {"tgi_max_input_tokens": 4096, "tgi_max_total_tokens": 2048},
        "tgi_max_input_tokens",
        ["4096", "less than tgi_max_total_tokens"],
    ),
    "prefill-below-input": (
        {"tgi_max_input_tokens": 2048, "tgi_max_batch_prefill_tokens": 1024},
        "tgi_max_batch_prefill_tokens",
        ["1024", "at least tgi_max_input_tokens"],
    ),
    "max-total-zero": ({"tgi_max_total_tokens": 0}, "tgi_max_total_tokens", ["integer > 0"]),
    "max-input-string": (
        {"tgi_max_input_tokens": "1024"},
        "tgi_max_input_tokens",
        ["'1024'", "integer > 0"],
    ),
    "memory-fraction-zero": (
        {"tgi_cuda_memory_fraction": 0},
        "tgi_cuda_memory_fraction",
        ["0", "(0, 1]"],
    ),
    "memory-fraction-negative": (
        {"tgi_cuda_memory_fraction": -0.1},
        "tgi_cuda_memory_fraction",
        ["-0.1", "(0, 1]"],
    ),
    "memory-fraction-above-one": (
        {"tgi_cuda_memory_fraction": 1.01},
        "tgi_cuda_memory_fraction",
        ["1.01", "(0, 1]"],
    ),
    "memory-fraction-nan": (
        {"tgi_cuda_memory_fraction": float("nan")},
        "tgi_cuda_memory_fraction",
        ["(0, 1]"],
    ),
    "concurrency-zero": (
        {"tgi_max_concurrent_requests": 0},
        "tgi_max_concurrent_requests",
        ["integer > 0"],
    ),
    "model-id-empty": ({"tgi_model_id": ""}, "tgi_model_id", ["''", '"org/name"']),
    "model-id-missing": ({"tgi_model_id": None}, "tgi_model_id", ["required", '"org/name"']),
    "model-id-three-parts": ({"tgi_model_id": "a/b/c"}, "tgi_model_id", ["'a/b/c'", '"org/name"']),
    "model-id-leading-dash": ({"tgi_model_id": "-x/y"}, "tgi_model_id", ["'-x/y'", "starting"]),
    "model-id-empty-part": ({"tgi_model_id": "x//y"}, "tgi_model_id", ["'x//y'", '"org/name"']),
    "model-id-space": ({"tgi_model_id": "x y"}, "tgi_model_id", ["'x y'", "letters, digits"]),
    "model-id-double-dash": ({"tgi_model_id": "org/a--b"}, "tgi_model_id", ["'org/a--b'", '"--"']),
    "model-id-trailing-dot": ({"tgi_model_id": "org/name."}, "tgi_model_id", ["ending"]),
    "model-id-too-long": ({"tgi_model_id": "o/" + "a" * 97}, "tgi_model_id", ["1-96"]),
    "model-id-not-a-string": ({"tgi_model_id": 7}, "tgi_model_id", ["7", '"org/name"']),
    "revision-with-space": ({"tgi_model_revision": "my branch"}, "tgi_model_revision", ["spaces"]),
    "port-zero": ({"tgi_container_port": 0}, "tgi_container_port", ["1..65535"]),
    "port-too-high": ({"tgi_container_port": 70000}, "tgi_container_port", ["1..65535"]),
    "cache-path-relative": (
        {"tgi_cache_mount_path": "data"},
        "tgi_cache_mount_path",
        ["'data'", "absolute path"],
    ),
    "cache-path-root": ({"tgi_cache_mount_path": "/"}, "tgi_cache_mount_path", ["other than '/'"]),
    "api-key-secret-missing": ({"tgi_api_key_secret": None}, "tgi_api_key_secret", ["required"]),
    "api-key-secret-bad-name": (
        {"tgi_api_key_secret": "TGI_Key"},
        "tgi_api_key_secret",
        ["'TGI_Key'", "lowercase letters"],
    ),
    "hf-token-secret-bad-name": (
        {"tgi_hf_token_secret": "hf token"},
        "tgi_hf_token_secret",
        ["'hf token'", "lowercase letters", "or null"],
    ),
    "nccl-env-not-a-mapping": (
        {"tgi_nccl_env": ["NCCL_DEBUG=INFO"]},
        "tgi_nccl_env",
        ["mapping of NCCL variable names"],
    ),
    "nccl-env-foreign-variable": (
        {"tgi_nccl_env": {"HOSTNAME": "x"}},
        "tgi_nccl_env",
        ["'HOSTNAME'", "NCCL_"],
    ),
    "nccl-env-number-value": (
        {"tgi_nccl_env": {"NCCL_P2P_DISABLE": 1}},
        "tgi_nccl_env",
        ["'NCCL_P2P_DISABLE'", "quote numbers"],
    ),
    "extra-args-vllm-flag": (
        {"tgi_extra_args": ["--max-parallel-loading-workers", "2"]},
        "tgi_extra_args",
        ["'--max-parallel-loading-workers'", "not a flag", "--max-batch-size", "--speculate"],
    ),
    "extra-args-managed-num-shard": (
        {"tgi_extra_args": ["--num-shard", "2"]},
        "tgi_extra_args",
        ["'--num-shard'", "tgi_gpu_count"],
    ),
    "extra-args-managed-model-id": (
        {"tgi_extra_args": ["--model-id=gpt2"]},
        "tgi_extra_args",
        ["'--model-id=gpt2'", "tgi_model_id"],
    ),
    "extra-args-managed-hostname": (
        {"tgi_extra_args": ["--hostname", "::"]},
        "tgi_extra_args",
        ["'--hostname'", "0.0.0.0"],
    ),
    "extra-args-managed-api-key": (
        {"tgi_extra_args": ["--api-key", "changeme123"]},
        "tgi_extra_args",
        ["'--api-key'", "tgi_api_key_secret"],
    ),
    "extra-args-legacy-max-input-length": (
        {"tgi_extra_args": ["--max-input-length=10"]},
        "tgi_extra_args",
        ["tgi_max_input_tokens"],
    ),
    "extra-args-flag-and-value-in-one-item": (
        {"tgi_extra_args": ["--max-batch-size 8"]},
        "tgi_extra_args",
        ["'--max-batch-size 8'", "one argument"],
    ),
    "extra-args-short-flag": ({"tgi_extra_args": ["-e"]}, "tgi_extra_args", ["long form"]),
    "extra-args-missing-value": (
        {"tgi_extra_args": ["--max-batch-size"]},
        "tgi_extra_args",
        ["--max-batch-size needs a value"],
    ),
    "extra-args-value-then-flag": (
        {"tgi_extra_args": ["--max-batch-size", "--json-output"]},
        "tgi_extra_args",
        ["--max-batch-size needs a value"],
    ),
    "extra-args-switch-with-value": (
        {"tgi_extra_args": ["--trust-remote-code=true"]},
        "tgi_extra_args",
        ["switch and takes no value"],
    ),
    "extra-args-stray-value": ({"tgi_extra_args": ["8"]}, "tgi_extra_args", ["'8'", "no flag"]),
    "extra-args-duplicate": (
        {"tgi_extra_args": ["--json-output", "--json-output"]},
        "tgi_extra_args",
        ["more than once"],
    ),
    "extra-args-not-a-list": (
        {"tgi_extra_args": "--trust-remote-code"},
        "tgi_extra_args",
        ["list of strings"],
    ),
    "unknown-setting-typo": (
        {"tgi_modle_id": "gpt2"},
        "tgi_modle_id",
        ["not a TGI setting", "did you mean tgi_model_id"],
    ),
}


@pytest.mark.parametrize(("changes", "variable", "words"), BAD.values(), ids=BAD.keys())
def test_bad_input_is_refused(changes: dict, variable: str, words: list[str]) -> None:
    errors = validate_tgi_settings(settings(**changes))
    assert len(errors) == 1, errors
    assert errors[0].startswith(variable), errors
    for word in words:
        assert word in errors[0]
    with pytest.raises(TgiSettingsError) as raised:
        tgi_workload(settings(**changes))
    assert raised.value.errors == errors
    assert errors[0] in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_vllm_flag_value_gets_no_second_message() -> None:
    errors = validate_tgi_settings(settings(tgi_extra_args=["--max-parallel-loading-workers", "2"]))
    assert len(errors) == 1


def test_all_problems_reported_at_once() -> None:
    bad = settings(
        tgi_model_id="x//y",
        tgi_gpu_count=5,
        tgi_dtype="float16",
        tgi_quantize="gptq",
        tgi_cuda_memory_fraction=0,
        tgi_extra_args=["--max-parallel-loading-workers", "2", "--num-shard", "3"],
    )
    errors = validate_tgi_settings(bad)
    named = [error.split(maxsplit=1)[0].rstrip(":") for error in errors]
    assert named == [
        "tgi_model_id",
        "tgi_gpu_count",
        "tgi_dtype",
        "tgi_cuda_memory_fraction",
        "tgi_extra_args",
        "tgi_extra_args",
    ]


def test_not_a_mapping() -> None:
    assert validate_tgi_settings(["tgi_model_id"]) == [
        "TGI settings: ['tgi_model_id'] is not a mapping of tgi_* variables"
    ]


def test_every_setting_is_a_documented_tgi_server_variable_with_the_same_choices() -> None:
    roles = Path(tgi_filter.__file__).resolve().parents[2] / "roles"
    spec = yaml.safe_load((roles / "tgi_server" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(SETTINGS) <= set(options)
    assert options["tgi_dtype"]["choices"] == list(DTYPES)
    assert options["tgi_quantize"]["choices"] == list(QUANTIZE_METHODS)
    defaults = yaml.safe_load((roles / "tgi_server" / "defaults" / "main.yml").read_text())
    # A setting's own default (what an unset one means) is the role's default where both have
    # one; the role sets the token limits, its image comes from the catalog.
    for name, default in SETTINGS.items():
        if default is not None and defaults.get(name) is not None:
            assert defaults[name] == default, name


# --- GPU catalog use ---------------------------------------------------------------------------

H100 = {
    "memory_gib": 80,
    "compute_capability": "9.0",
    "gpus_per_node": 8,
    "tgi_image": "ghcr.io/huggingface/text-generation-inference:3.3.7",
}


def test_user_catalog_adds_a_gpu_type() -> None:
    container = tgi_workload(settings(tgi_gpu_type="gpu-h100", tgi_gpu_count=8), {"gpu-h100": H100})
    assert container["args"][-2:] == ["--num-shard", "8"]


def test_user_catalog_lowers_gpus_per_node() -> None:
    catalog = {"gpu-tesla-v100": {"gpus_per_node": 2}}
    errors = validate_tgi_settings(settings(tgi_gpu_count=3), catalog)
    assert errors == [
        "tgi_gpu_count: 3 is more than one gpu-tesla-v100 node has: allowed 0..2 "
        "(all GPUs of a pod are on one node)"
    ]


def test_broken_user_catalog_is_reported_with_the_settings() -> None:
    errors = validate_tgi_settings(settings(tgi_dtype="x"), {"gpu-h100": {"memory_gib": 80}})
    assert errors[0].startswith("icc_gpu_catalog['gpu-h100']: a new GPU type needs all fields")
    assert errors[1].startswith("tgi_dtype:")


# --- the filter plugin -------------------------------------------------------------------------


def test_filter_plugin_exposes_the_workload_of_each_engine() -> None:
    filters = tgi_filter.FilterModule().filters()
    assert set(filters) == {"tgi_workload", "vllm_workload"}
    assert filters["tgi_workload"](settings()) == tgi_workload(settings())
    assert filters["vllm_workload"](settings())["image"] == "docker.io/vllm/vllm-openai:v0.14.1"
    with pytest.raises(AnsibleFilterError, match="icc_engine vllm needs GPUs"):
        filters["vllm_workload"](settings(tgi_gpu_count=0))


def test_filter_raises_ansible_filter_error_with_every_message() -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        tgi_filter.tgi_workload(settings(tgi_gpu_count=-1, tgi_dtype="x"))
    message = str(raised.value)
    assert "tgi_gpu_count: -1" in message
    assert "tgi_dtype: 'x'" in message


def test_model_settings_errors_are_the_validators_own_for_the_model_and_gpus() -> None:
    model_only = {"tgi_model_id": MODEL, "tgi_gpu_count": 5, "tgi_dtype": "float32"}
    errors = model_settings_errors(model_only)
    # Exactly validate_tgi_settings' messages for these settings; the rest (no API key Secret
    # here) is not this function's business.
    assert errors == [e for e in validate_tgi_settings(model_only) if "api_key" not in e]
    assert [e.split(":")[0] for e in errors] == ["tgi_gpu_count", "tgi_dtype"]
    assert model_settings_errors({"tgi_model_id": MODEL}) == []


# --- checked once: the digest the check leaves in the settings --------------------------------


def test_sealed_settings_are_taken_as_checked_without_a_second_check(monkeypatch) -> None:
    checked = sealed(settings(tgi_gpu_count=2))
    monkeypatch.setattr(tgi_settings_module, "validate_tgi_settings", _no_second_check)
    values = check_tgi_settings(checked)
    assert isinstance(values, TgiSettings)
    assert values.gpu_count == 2 and not values.on_cpu
    assert values["tgi_shm_size_per_gpu"] == "1Gi"  # defaults filled in
    assert check_tgi_settings(values) is values


def _no_second_check(*_args, **_kwargs):
    raise AssertionError("checked a second time")


def test_a_setting_changed_after_the_check_is_checked_again() -> None:
    checked = sealed(settings())
    with pytest.raises(TgiSettingsError) as raised:
        check_tgi_settings({**checked, "tgi_gpu_count": -1})
    assert raised.value.errors == [
        "tgi_gpu_count: -1 is not allowed: an integer >= 0 (0 runs TGI on the CPU, n >= 1 "
        "shards the model over n GPUs of one node)"
    ]
    # The same settings with another catalog than the one checked are checked again too.
    assert not is_sealed(checked, {"gpu-tesla-v100": {"gpus_per_node": 2}})
    assert is_sealed(checked) and is_sealed(checked, {})


def test_what_the_collection_learns_after_the_check_keeps_the_settings_checked() -> None:
    checked = sealed(settings(tgi_hf_token_secret="tgi-hf-token"))
    learned = {**checked, "tgi_model_architecture": "bloom", "tgi_hf_token_secret": None}
    assert is_sealed(learned)
    assert not is_sealed({**checked, "tgi_model_id": "gpt2"})
    assert not is_sealed(settings())  # never checked


def test_unchecked_settings_are_checked_where_they_come_in() -> None:
    with pytest.raises(TgiSettingsError) as raised:
        check_tgi_settings(settings(tgi_dtype="x"))
    assert [error.split(":")[0] for error in raised.value.errors] == ["tgi_dtype"]


def test_the_workload_of_sealed_settings_is_not_checked_again(monkeypatch) -> None:
    checked = sealed(settings(tgi_gpu_count=4))
    expected = tgi_workload(settings(tgi_gpu_count=4))
    monkeypatch.setattr(tgi_settings_module, "validate_tgi_settings", _no_second_check)
    assert tgi_filter.tgi_workload(checked) == expected
