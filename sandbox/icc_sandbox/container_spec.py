"""What a container's spec says, read as a node would read it: the application its image
serves (and where its probes must aim), its env, the arguments and GPUs text-generation-launcher
gets, the token limits, where its API key comes from, and how TGI's launch ends on a node
(icc_sandbox.tgi_launcher). Pure functions of the pod, the container and the node.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from icc_sandbox.nodes import GPU_RESOURCE, JSON, NodeSpec
from icc_sandbox.tgi_launcher import (
    HF_TOKEN_VARIABLES,
    LaunchOutcome,
    gated_repo_outcome,
    simulate_launch,
)
from icc_sandbox.tgi_standin import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS
from icc_sandbox.vllm_serve import ServeOutcome, simulate_serve

# "gated": the model's Hub repository is gated, so TGI without a Hugging Face token fails its
# weights download with a 401 (see tgi_launcher.gated_repo_outcome).
SIMULATE_ANNOTATION = "sandbox.haw.icc/simulate"
SECRET_PLACEHOLDER = "<from-secret>"
# TgiStandIn's own token limits, for a launcher that was given none (TGI would read the model's).
DEFAULT_TOKEN_LIMITS = (DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS)


@dataclass(frozen=True)
class App:
    """What a container image serves, for probe checks."""

    kind: str  # "tgi", "vllm", "open-webui" or "generic"
    port: int | None = None
    paths: frozenset[str] = frozenset()


TGI_PATHS = frozenset({"/health", "/info", "/metrics", "/v1/models"})
WEBUI_PATHS = frozenset({"/health", "/health/db", "/", "/api/config", "/api/version"})
# Routes of vLLM's OpenAI server (0.14.1 entrypoints/openai/api_server.py and its routers).
VLLM_PATHS = frozenset({"/health", "/ping", "/version", "/metrics", "/v1/models"})
# The engines the node simulates a start-up for (the others start at once).
ENGINES = ("tgi", "vllm")


def app_for(container: JSON) -> App:
    image = container.get("image", "")
    env = plain_env(container)
    if "text-generation-inference" in image:
        # The TGI image sets PORT=80; the launcher's own default (3000) applies only without it.
        port = int(flag_value(container.get("args", []), "--port") or env.get("PORT") or 80)
        return App("tgi", port, TGI_PATHS)
    if "vllm-openai" in image:  # ENTRYPOINT ["vllm", "serve"]: the args are serve's
        return App("vllm", int(flag_value(container.get("args", []), "--port") or 8000), VLLM_PATHS)
    if "open-webui" in image:
        return App("open-webui", int(env.get("PORT") or 8080), WEBUI_PATHS)
    return App("generic")


def plain_env(container: JSON) -> dict[str, str]:
    """The container's env; values from Secrets/ConfigMaps are present but unknown here."""
    env = {}
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", SECRET_PLACEHOLDER if "valueFrom" in entry else "")
    return env


def flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def launcher_args(container: JSON) -> list[str]:
    """The arguments text-generation-launcher receives (the image's entrypoint is the launcher)."""
    command = list(container.get("command", []))
    args = list(container.get("args", []))
    if command and command[0].endswith("text-generation-launcher"):
        return command[1:] + args
    return args


def gpu_count(container: JSON) -> int:
    resources = container.get("resources", {})
    value = resources.get("limits", {}).get(GPU_RESOURCE) or resources.get("requests", {}).get(
        GPU_RESOURCE
    )
    return int(value or 0)


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_bytes(quantity: str | None) -> int | None:
    if not quantity:
        return None
    match = _QUANTITY.match(str(quantity))
    if not match or match.group(2) not in _SUFFIXES:
        return None
    return int(float(match.group(1)) * _SUFFIXES[match.group(2)])


def probe_port(container: JSON, check: JSON) -> int | None:
    """The port a probe's httpGet/tcpSocket aims at, a named port resolved by the container's."""
    port = check.get("port")
    if isinstance(port, str):
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        return named.get(port, port)
    return port


def launch_outcome(container: JSON, node: NodeSpec, pod: JSON | None = None) -> LaunchOutcome:
    """How text-generation-launcher (or `vllm serve`, in a vLLM container) starts in this
    container on this node (of `pod`, whose annotations may simulate a gated model)."""
    capability = node.gpu_compute_capability
    if app_for(container).kind == "vllm":
        served = serve_outcome(container, node)
        return LaunchOutcome(
            served.ok,
            served.reason,
            served.exit_code,
            served.message,
            served.model,
            served.tensor_parallel,
        )
    outcome = simulate_launch(
        launcher_args(container),
        plain_env(container),
        gpu_count(container),
        node.gpu_memory_gib,
        quantity_bytes(container.get("resources", {}).get("limits", {}).get("memory")),
        tuple(int(part) for part in capability.split(".")) if capability else None,
    )
    # The download comes after clap and the launcher's own checks: those failures come first.
    reaches_download = outcome.ok or "text_generation_launcher" in outcome.message
    if pod is not None and reaches_download and gated_without_token(pod, container):
        return gated_repo_outcome(outcome.model_id, outcome.num_shard, hub_request_id(pod))
    return outcome


def serve_outcome(container: JSON, node: NodeSpec) -> ServeOutcome:
    """How `vllm serve` starts in this vLLM container on this node."""
    capability = node.gpu_compute_capability
    return simulate_serve(
        container.get("args", []),
        plain_env(container),
        gpu_count(container),
        node.gpu_memory_gib,
        tuple(int(part) for part in capability.split(".")) if capability else None,
    )


def gated_without_token(pod: JSON, container: JSON) -> bool:
    annotations = pod["metadata"].get("annotations") or {}
    if annotations.get(SIMULATE_ANNOTATION) != "gated":
        return False
    env = plain_env(container)
    return not any(env.get(name) for name in HF_TOKEN_VARIABLES)


def hub_request_id(pod: JSON) -> str:
    """A Hub request id of the usual shape, derived from the pod (the same on every read)."""
    digest = hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()
    return f"Root=1-{digest[:8]}-{digest[8:32]};{uuid_from(digest[32:64])}"


def uuid_from(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:32]}"


def token_limits(container: JSON) -> tuple[int, int]:
    """(max input, max total) tokens as the launcher got them; the stand-in's defaults fill gaps."""
    args, env = launcher_args(container), plain_env(container)

    def given(flag: str, env_name: str) -> int | None:
        raw = flag_value(args, flag) or env.get(env_name)
        return int(raw) if raw and raw.isdigit() else None  # a Secret's value stays unknown

    max_input = given("--max-input-tokens", "MAX_INPUT_TOKENS") or given(
        "--max-input-length", "MAX_INPUT_LENGTH"
    )
    max_total = given("--max-total-tokens", "MAX_TOTAL_TOKENS")
    if max_total is None:
        max_total = max(DEFAULT_TOKEN_LIMITS[1], (max_input or 0) + 1)
    if max_input is None:
        max_input = max_total - 1
    if not 0 < max_input < max_total:
        return DEFAULT_TOKEN_LIMITS
    return max_input, max_total


def api_key_source(
    container: JSON, variable: str = "API_KEY"
) -> tuple[str | None, tuple[str, str] | None]:
    """Where the API key `variable` (TGI's API_KEY, vLLM's VLLM_API_KEY) comes from: (its
    literal value, None) or (None, (Secret name, key))."""
    literal, secret = None, None
    for entry in container.get("env", []):  # the last entry of a name wins, as in Kubernetes
        if entry["name"] != variable:
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        literal = None if ref else entry.get("value") or None
        secret = (ref["name"], ref["key"]) if ref else None
    return literal, secret
