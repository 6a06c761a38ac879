"""A pure simulation of TGI's `text-generation-launcher` start-up (v3.3.x), for the node agent.

Given a container's arguments, env and GPUs, it answers what the real launcher would do: refuse
the command line like clap, refuse arguments like the launcher's own validation, crash a shard
like the Python server and torch, or start. The checks run in the launcher's order:

1. clap parses the command line, then fills what is still unset from env (exit 2 on error);
2. `find_num_shards` and the argument validation of `main` (exit 1, `Error: <Variant>(...)`);
3. the shards start: server CLI checks, `initialize_torch_distributed`, loading the weights;
4. the router starts and checks the token budgets against the batch limits.

The flag table and the architecture rules below are this module's own reading of TGI (contract
tests check them against TGI's documentation and against the collection's engine data). No I/O:
the model's size and architecture are guessed from its name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

REFERENCE_VERSION = "3.3.7"
DEFAULT_MODEL_ID = "bigscience/bloom-560m"

# Exit codes and container termination reasons, as Kubernetes reports them.
EXIT_OK = 0
EXIT_LAUNCHER_ERROR = 1  # `fn main() -> Result<(), LauncherError>` returning Err
EXIT_USAGE = 2  # clap's exit code for a command-line error
EXIT_OOM_KILLED = 137  # 128 + SIGKILL
REASON_ERROR = "Error"
REASON_OOM = "OOMKilled"
REASON_COMPLETED = "Completed"  # --help / --version: exit 0 without serving

# Rust's unsigned integer types, by their upper bound.
UINT_MAX = {"u16": 2**16 - 1, "u32": 2**32 - 1, "u64": 2**64 - 1, "usize": 2**64 - 1}
FLOAT_KINDS = frozenset({"f32"})


@dataclass(frozen=True)
class Flag:
    """One launcher argument as clap declares it."""

    long: str  # without the leading "--"
    env: str | None  # variable clap falls back to; None where clap reads no env
    kind: str  # "switch", "str", "bool", "enum", a UINT_MAX key, "f32", or "usize-list"
    _: KW_ONLY
    choices: tuple[str, ...] = ()  # possible values of "bool"/"enum" flags, in clap's order
    default: str | None = None
    short: str | None = None
    repeatable: bool = False  # a Vec<String> field: each occurrence appends

    @property
    def takes_value(self) -> bool:
        return self.kind != "switch"

    @property
    def display(self) -> str:
        """How clap names the argument in its errors."""
        if not self.takes_value:
            return f"--{self.long}"
        return f"--{self.long} <{self.long.upper().replace('-', '_')}>"


_BOOL = ("true", "false")
_OTLP_SERVICE = "text-generation-inference.router"
QUANTIZE_VALUES = (
    "awq",
    "compressed-tensors",
    "eetq",
    "exl2",
    "gptq",
    "marlin",
    "bitsandbytes",
    "bitsandbytes-nf4",
    "bitsandbytes-fp4",
    "fp8",
)

# In the order of `text-generation-launcher --help` (clap suggests the last best match).
FLAGS: tuple[Flag, ...] = (
    Flag("model-id", "MODEL_ID", "str", default=DEFAULT_MODEL_ID),
    Flag("revision", "REVISION", "str"),
    Flag("validation-workers", "VALIDATION_WORKERS", "usize", default="2"),
    Flag("sharded", "SHARDED", "bool", choices=_BOOL),
    Flag("num-shard", "NUM_SHARD", "usize"),
    Flag("quantize", "QUANTIZE", "enum", choices=QUANTIZE_VALUES),
    Flag("speculate", "SPECULATE", "usize"),
    Flag("dtype", "DTYPE", "enum", choices=("float16", "bfloat16")),
    Flag("kv-cache-dtype", "KV_CACHE_DTYPE", "enum", choices=("fp8_e4m3fn", "fp8_e5m2")),
    Flag("trust-remote-code", "TRUST_REMOTE_CODE", "switch"),
    Flag("max-concurrent-requests", "MAX_CONCURRENT_REQUESTS", "usize", default="128"),
    Flag("max-best-of", "MAX_BEST_OF", "usize", default="2"),
    Flag("max-stop-sequences", "MAX_STOP_SEQUENCES", "usize", default="4"),
    Flag("max-top-n-tokens", "MAX_TOP_N_TOKENS", "u32", default="5"),
    Flag("max-input-tokens", "MAX_INPUT_TOKENS", "usize"),
    Flag("max-input-length", "MAX_INPUT_LENGTH", "usize"),
    Flag("max-total-tokens", "MAX_TOTAL_TOKENS", "usize"),
    Flag("waiting-served-ratio", "WAITING_SERVED_RATIO", "f32", default="0.3"),
    Flag("max-batch-prefill-tokens", "MAX_BATCH_PREFILL_TOKENS", "u32"),
    Flag("max-batch-total-tokens", "MAX_BATCH_TOTAL_TOKENS", "u32"),
    Flag("max-waiting-tokens", "MAX_WAITING_TOKENS", "usize", default="20"),
    Flag("max-batch-size", "MAX_BATCH_SIZE", "usize"),
    Flag("cuda-graphs", "CUDA_GRAPHS", "usize-list"),
    Flag("hostname", "HOSTNAME", "str", default="0.0.0.0"),
    Flag("port", "PORT", "u16", default="3000", short="p"),
    # The documentation gives this one `-p` too; clap resolves `-p` to the first, --port.
    Flag("prometheus-port", "PROMETHEUS_PORT", "u16", default="9000", short="p"),
    Flag("shard-uds-path", "SHARD_UDS_PATH", "str", default="/tmp/text-generation-server"),
    Flag("master-addr", "MASTER_ADDR", "str", default="localhost"),
    Flag("master-port", "MASTER_PORT", "usize", default="29500"),
    Flag("huggingface-hub-cache", "HUGGINGFACE_HUB_CACHE", "str"),
    Flag("weights-cache-override", "WEIGHTS_CACHE_OVERRIDE", "str"),
    Flag("disable-custom-kernels", "DISABLE_CUSTOM_KERNELS", "switch"),
    Flag("cuda-memory-fraction", "CUDA_MEMORY_FRACTION", "f32", default="1.0"),
    Flag("rope-scaling", "ROPE_SCALING", "enum", choices=("linear", "dynamic")),
    Flag("rope-factor", "ROPE_FACTOR", "f32"),
    Flag("json-output", "JSON_OUTPUT", "switch"),
    Flag("otlp-endpoint", "OTLP_ENDPOINT", "str"),
    Flag("otlp-service-name", "OTLP_SERVICE_NAME", "str", default=_OTLP_SERVICE),
    Flag("cors-allow-origin", "CORS_ALLOW_ORIGIN", "str", repeatable=True),
    Flag("api-key", "API_KEY", "str"),
    Flag("watermark-gamma", "WATERMARK_GAMMA", "f32"),
    Flag("watermark-delta", "WATERMARK_DELTA", "f32"),
    Flag("ngrok", "NGROK", "switch"),
    Flag("ngrok-authtoken", "NGROK_AUTHTOKEN", "str"),
    Flag("ngrok-edge", "NGROK_EDGE", "str"),
    Flag("tokenizer-config-path", "TOKENIZER_CONFIG_PATH", "str"),
    Flag("disable-grammar-support", "DISABLE_GRAMMAR_SUPPORT", "switch"),
    Flag("env", None, "switch", short="e"),
    Flag("max-client-batch-size", "MAX_CLIENT_BATCH_SIZE", "usize", default="4"),
    Flag("lora-adapters", "LORA_ADAPTERS", "str"),
    Flag("usage-stats", "USAGE_STATS", "enum", choices=("on", "off", "no-stack"), default="on"),
    Flag("payload-limit", "PAYLOAD_LIMIT", "usize", default="2000000"),
    Flag("enable-prefill-logprobs", "ENABLE_PREFILL_LOGPROBS", "switch"),
    Flag(
        "graceful-termination-timeout",
        "GRACEFUL_TERMINATION_TIMEOUT",
        "u64",
        default="90",
        short="g",
    ),
    Flag("help", None, "switch", short="h"),
    Flag("version", None, "switch", short="V"),
)
FLAGS_BY_LONG = {flag.long: flag for flag in FLAGS}
_FLAGS_BY_SHORT = {flag.short: flag for flag in reversed(FLAGS) if flag.short}  # first one wins

# The router's prefill budget when none is given: the launcher's `compute_optimal` knows no V100
# FLOPs, so it falls back to 4096 (capped by max_position_embeddings, unknown here).
DEFAULT_MAX_BATCH_PREFILL_TOKENS = 4096

# Memory model. Bytes per parameter by storage precision; 4-bit formats carry group scales and
# zero points, a few percent on top of half a byte.
BYTES_PER_PARAM = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "8bit": 1.0, "4bit": 0.53}
QUANTIZE_PRECISION = {
    "awq": "4bit",
    "gptq": "4bit",
    "marlin": "4bit",
    "exl2": "4bit",
    "bitsandbytes-nf4": "4bit",
    "bitsandbytes-fp4": "4bit",
    "eetq": "8bit",
    "bitsandbytes": "8bit",
    "fp8": "8bit",
    "compressed-tensors": "8bit",  # mostly W8A8/FP8 checkpoints; a 4-bit name overrides it
}
# Pre-quantized checkpoints announce themselves in their names (TGI reads their config).
NAME_PRECISION_HINTS = {
    "4bit": ("awq", "gptq", "marlin", "exl2", "4bit", "nf4", "int4", "w4a16"),
    "8bit": ("int8", "8bit", "w8a8", "fp8"),
}
GPU_DEFAULT_DTYPE = "float16"
CPU_DEFAULT_DTYPE = "float32"  # TGI's CPU path loads in float32 unless --dtype says otherwise
RUNTIME_OVERHEAD = 1.20  # activations, CUDA context and allocator slack on top of the weights
GIB = 2**30
# TGI's flash attention kernels need compute capability 8.0 (server/.../models/__init__.py of
# TGI 3.3: FLASH_ATTENTION is False below). Without them, get_model raises for a sharded model
# of most architectures, and loads an unsharded one through CausalLM.fallback, which passes
# device_map="auto" when more than one CUDA device is visible: the layers spread over them.
FLASH_ATTENTION_FROM = (8, 0)

# This simulation's own reading of get_model without flash attention (TGI 3.3.7,
# server/text_generation_server/models/__init__.py; the line numbers are that file's), by the
# config's model_type. Below compute capability 8.0 the flash classes do not import
# (layers/attention/cuda.py: "GPU with CUDA capability 7 0 is not supported"), and with them
# neither does the transformers flash backend (FLASH_TRANSFORMERS_BACKEND). It is read apart
# from the collection's plugins/module_utils/engine/tgi_multi_gpu.py on purpose, and a contract
# test (tests/unit/test_tgi_launcher_contract.py) holds the two readings together: a mistake in
# either shows as a disagreement instead of being mirrored by the simulator.
#
# Sharded classes of their own, no flash attention needed: bloom and mpt (CausalLM, lines
# 788-809), gpt_neox (`elif sharded: return CausalLM(... GPTNeoxForCausalLM ...)`, 909-917; the
# Pythia models are gpt_neox), opt (1473) and t5 (Seq2SeqLM, 1484).
SHARDED_WITHOUT_FLASH = frozenset({"bloom", "mpt", "gpt_neox", "opt", "t5"})
# Model types that fail without flash attention on one shard or many: the vision-language
# models raise FLASH_ATT_ERROR_MESSAGE with their name in an `else:` (idefics 1511, qwen2_vl
# 1542, qwen2_5_vl 1575, mllama 1606, idefics2 1637, idefics3 1668, paligemma 1697, llava_next
# 1723); phi calls TransformersFlashCausalLM.fallback without asking whether that class was
# imported (942-950).
FLASH_ONLY = {
    "idefics": "NotImplementedError: Idefics requires Flash Attention enabled models.",
    "qwen2_vl": "NotImplementedError: Qwen2_VL requires Flash Attention enabled models.",
    "qwen2_5_vl": "NotImplementedError: Qwen2_5_VL requires Flash Attention enabled models.",
    "mllama": "NotImplementedError: Mllama requires Flash Attention enabled models.",
    "idefics2": "NotImplementedError: Idefics requires Flash Attention enabled models.",
    "idefics3": "NotImplementedError: Idefics requires Flash Attention enabled models.",
    "paligemma": "NotImplementedError: PaliGemma requires Flash Attention enabled models.",
    "llava_next": "NotImplementedError: LlavaNext requires Flash Attention enabled models.",
    "phi": "NameError: name 'TransformersFlashCausalLM' is not defined",
}
# The others with flash classes raise only when sharded (`elif sharded: raise
# NotImplementedError(FLASH_ATT_ERROR_MESSAGE.format("Sharded <name>"))`), naming the model so;
# unsharded they load through CausalLM.fallback. llama, phi3 and granite share a branch that
# names the model_type itself (1015-1017).
SHARDED_NEEDS_FLASH = {
    "gpt_bigcode": "Santacoder",  # 774-776
    "gpt2": "GPT-2",  # 835-836
    "gptj": "GPT-J",  # 871-872
    "llama": "llama",
    "phi3": "phi3",
    "gemma": "Gemma",  # 1095-1096
    "gemma2": "Gemma2",  # 1130-1131
    "gemma3": "Gemma3",  # 1211-1212
    "falcon": "Falcon",  # 1306
    "mistral": "Mistral",  # 1357-1358
    "mixtral": "Mixtral",  # 1391-1392
    "starcoder2": "Starcoder2",  # 1425-1427
    "qwen2": "Qwen2",  # 1461-1462
}
# Any other model type takes transformers' AutoModel path, which refuses sharding (1766-1767).
AUTO_MODEL_SHARDED = "NotImplementedError: sharded is not supported for AutoModel"
# The model_type of the model's config, guessed from its name (this simulation reads no
# config): the first pattern found in the repository name (lower case) wins.
MODEL_TYPE_HINTS = (
    (r"idefics3", "idefics3"),
    (r"idefics2", "idefics2"),
    (r"idefics", "idefics"),
    (r"llava-v1\.6|llava-next", "llava_next"),
    (r"paligemma", "paligemma"),
    (r"qwen2\.5-vl", "qwen2_5_vl"),
    (r"qwen2-vl", "qwen2_vl"),
    (r"llama-3\.2-\d+b-vision", "mllama"),
    (r"mixtral", "mixtral"),
    (r"mistral", "mistral"),
    (r"qwen1\.5|qwen2", "qwen2"),
    (r"gemma-?3", "gemma3"),
    (r"gemma-?2", "gemma2"),
    (r"gemma", "gemma"),
    (r"(?<![a-z0-9])phi-?3", "phi3"),
    (r"(?<![a-z0-9])phi", "phi"),
    (r"starcoder2", "starcoder2"),
    (r"starcoder|santacoder", "gpt_bigcode"),
    (r"llama", "llama"),
    (r"falcon", "falcon"),
    (r"bloom", "bloom"),
    (r"(?<![a-z0-9])mpt(?![a-z])", "mpt"),
    (r"gpt-?neox|pythia", "gpt_neox"),
    (r"gpt-?j(?![a-z])", "gptj"),
    (r"(?<![a-z0-9])opt(?![a-z])", "opt"),
    (r"gpt2", "gpt2"),
    (r"(?<![a-z0-9])t5(?![a-z0-9])", "t5"),
)


@dataclass(frozen=True)
class LaunchOutcome:
    ok: bool
    reason: str  # "" when ok; "Error", "OOMKilled" (or "Completed" for --help/--version)
    exit_code: int  # 0 ok; 2 clap parse error; 1 launcher/shard/router error; 137 OOMKilled
    message: str  # a TGI-like log excerpt, as lastState.terminated.message shows it; "" when ok
    model_id: str  # the model TGI would serve (flag, else env MODEL_ID, else TGI's default)
    num_shard: int  # shards TGI would start (0 when it stops before deciding)


class _Abort(Exception):
    """Ends the simulated run: how the container terminates."""

    def __init__(self, reason: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.reason, self.exit_code, self.message = reason, exit_code, message


def simulate_launch(
    args: Sequence[str],
    env: Mapping[str, str],
    gpu_count: int,
    gpu_memory_gib: float | None,
    memory_limit_bytes: int | None = None,
    compute_capability: tuple[int, int] | None = None,
) -> LaunchOutcome:
    """What `text-generation-launcher <args>` does in a container with this env and these GPUs
    (of `compute_capability`; None: a GPU with flash attention)."""
    values: dict[str, Any] = {}
    num_shard = 0
    flash = compute_capability is None or compute_capability >= FLASH_ATTENTION_FROM
    try:
        _parse(args, env, values)
        num_shard = _find_num_shards(values, env, gpu_count)
        _validate(values, num_shard)
        if gpu_count and not flash:
            _get_model_without_flash(str(values["model-id"]), num_shard)
        _start_shards(values, env, num_shard, gpu_count, gpu_memory_gib, memory_limit_bytes, flash)
        _start_router(values)
    except _Abort as abort:
        return LaunchOutcome(
            False, abort.reason, abort.exit_code, abort.message, _model_id(values, env), num_shard
        )
    return LaunchOutcome(True, "", EXIT_OK, "", _model_id(values, env), num_shard)


def launcher_values(args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The launcher's arguments after clap (flag, else env, else default), by long flag name;
    None when clap refuses the command line. Values only known as placeholders stay strings."""
    values: dict[str, Any] = {}
    try:
        _parse(args, env, values)
    except _Abort:
        return None
    return {name: str(v) if isinstance(v, _Opaque) else v for name, v in values.items()}


# What a gated repository answers without a token, as huggingface_hub raises it in the weights
# download (the first Hub request of `text-generation-server download-weights` for a model that
# is not cached: adapter_config.json, TGI 3.3.7 server/text_generation_server/cli.py
# download_weights with merge_lora). huggingface_hub builds the text in utils/_http.py
# (hf_raise_for_status, "GatedRepo"), followed by the Hub's X-Error-Message.
HF_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")


def gated_repo_error(model_id: str, request_id: str) -> list[str]:
    """The tail of the download process's traceback for a gated repo and no token."""
    url = f"https://huggingface.co/{model_id}/resolve/main/adapter_config.json"
    return [
        "Traceback (most recent call last):",
        "  ...",
        f"huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: {request_id})",
        "",
        f"Cannot access gated repo for url {url}.",
        f"Access to model {model_id} is restricted. You must have access to it and be "
        "authenticated to access it. Please log in.",
    ]


def gated_repo_outcome(model_id: str, num_shard: int, request_id: str) -> LaunchOutcome:
    """The launcher's end when the weights download is refused (main.rs download_convert_model:
    "Download encountered an error", then `Err(LauncherError::DownloadError)`)."""
    lines = [
        "ERROR download: text_generation_launcher: Download encountered an error: ",
        *gated_repo_error(model_id, request_id),
        "Error: DownloadError",
    ]
    return LaunchOutcome(
        False, REASON_ERROR, EXIT_LAUNCHER_ERROR, "\n".join(lines), model_id, num_shard
    )


def _model_id(values: Mapping[str, Any], env: Mapping[str, str]) -> str:
    # After a parse error `values` is partial: fall back the way clap would have.
    return str(values.get("model-id") or env.get("MODEL_ID") or DEFAULT_MODEL_ID)


# --- 1. clap ---------------------------------------------------------------------------------

_USAGE = "Usage: text-generation-launcher [OPTIONS]"
# Values from Secrets/ConfigMaps reach the simulation as placeholders such as "<from-secret>".
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")


class _Opaque(str):
    """A typed value that is set, but only known as its placeholder."""

    __slots__ = ()


def _clap_error(text: str, tips: Sequence[str] = (), usage: bool = False) -> _Abort:
    parts = [f"error: {text}"]
    if tips:
        parts.append("\n".join(f"  tip: {tip}" for tip in tips))
    if usage:
        parts.append(_USAGE)
    parts.append("For more information, try '--help'.")
    return _Abort(REASON_ERROR, EXIT_USAGE, "\n\n".join(parts))


def _jaro(a: str, b: str) -> float:
    """Jaro similarity, the measure clap's suggestions use."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(max(len(a), len(b)) // 2 - 1, 0)
    used_b = [False] * len(b)
    matched_a: list[str] = []
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not used_b[j] and b[j] == char:
                used_b[j] = True
                matched_a.append(char)
                break
    if not matched_a:
        return 0.0
    matched_b = [char for char, used in zip(b, used_b, strict=True) if used]
    half_transpositions = sum(x != y for x, y in zip(matched_a, matched_b, strict=True)) / 2
    m = len(matched_a)
    return (m / len(a) + m / len(b) + (m - half_transpositions) / m) / 3


def _did_you_mean(value: str, candidates: Sequence[str]) -> str | None:
    """clap's pick: the best candidate scoring at least 0.7, the last one on a tie."""
    best, best_score = None, 0.7
    for candidate in candidates:
        score = _jaro(value, candidate)
        if score >= best_score:
            best, best_score = candidate, score
    return best


def _unknown_argument(token: str) -> _Abort:
    tips = []
    if token.startswith("--"):
        similar = _did_you_mean(token[2:], [flag.long for flag in FLAGS])
        if similar:
            tips.append(f"a similar argument exists: '--{similar}'")
    return _clap_error(f"unexpected argument '{token}' found", tips, usage=True)


def _invalid_value(flag: Flag, raw: str) -> _Abort:
    if raw == "":
        text = f"a value is required for '{flag.display}' but none was supplied"
    else:
        text = f"invalid value '{raw}' for '{flag.display}'"
    choices = flag.choices or (_BOOL if flag.kind == "switch" else ())
    if choices:
        text += f"\n  [possible values: {', '.join(choices)}]"
    similar = _did_you_mean(raw, choices) if raw else None
    return _clap_error(text, [f"a similar value exists: '{similar}'"] if similar else [])


def _rust_uint(flag: Flag, raw: str) -> int:
    if raw == "":
        problem = "cannot parse integer from empty string"
    elif not re.fullmatch(r"\+?[0-9]+", raw):
        problem = "invalid digit found in string"
    elif int(raw) > UINT_MAX[flag.kind.removesuffix("-list")]:
        problem = "number too large to fit in target type"
    else:
        return int(raw)
    raise _clap_error(f"invalid value '{raw}' for '{flag.display}': {problem}")


_RUST_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.I)


def _convert(flag: Flag, raw: str) -> Any:
    """clap's value parser for the flag's Rust type."""
    if flag.kind == "str":
        return raw
    if _PLACEHOLDER.match(raw):
        return None if flag.kind in ("switch", "bool") else _Opaque(raw)
    if flag.kind in ("switch", "bool"):  # bool's parser accepts exactly "true"/"false"
        if raw not in _BOOL:
            raise _invalid_value(flag, raw)
        return raw == "true"
    if flag.kind == "enum":
        if raw not in flag.choices:
            raise _invalid_value(flag, raw)
        return raw
    if flag.kind in FLOAT_KINDS:
        if not _RUST_FLOAT.fullmatch(raw):
            problem = "invalid float literal" if raw else "cannot parse float from empty string"
            raise _clap_error(f"invalid value '{raw}' for '{flag.display}': {problem}")
        return float(raw)
    if flag.kind == "usize-list":  # value_delimiter = ','
        return [_rust_uint(flag, part) for part in raw.split(",")]
    return _rust_uint(flag, raw)


def _store(flag: Flag, value: Any, values: dict[str, Any]) -> None:
    if flag.long in values and not flag.repeatable:
        raise _clap_error(
            f"the argument '{flag.display}' cannot be used multiple times", usage=True
        )
    if flag.long == "help":
        raise _Abort(REASON_COMPLETED, EXIT_OK, _help_text())
    if flag.long == "version":
        raise _Abort(REASON_COMPLETED, EXIT_OK, f"text-generation-launcher {REFERENCE_VERSION}")
    values[flag.long] = [*values.get(flag.long, []), value] if flag.repeatable else value


def _help_text() -> str:
    lines = ["Text Generation Launcher", "", _USAGE, "", "Options:"]
    for flag in FLAGS:
        prefix = f"-{flag.short}, " if flag.short else "    "
        extra = f" [env: {flag.env}=]" if flag.env else ""
        extra += f" [default: {flag.default}]" if flag.default else ""
        lines.append(f"  {prefix}{flag.display}{extra}")
    return "\n".join(lines)


def _parse(args: Sequence[str], env: Mapping[str, str], values: dict[str, Any]) -> None:
    """The command line first, token by token; then env for what is still unset; then defaults."""
    pending = list(args)
    positional_only = False

    def take_value(flag: Flag, attached: str | None) -> str:
        # A following token that looks like a flag is not taken as the value.
        if attached is not None:
            return attached
        if pending and not (pending[0].startswith("-") and len(pending[0]) > 1):
            return pending.pop(0)
        raise _invalid_value(flag, "")

    while pending:
        token = pending.pop(0)
        if positional_only or token == "-" or not token.startswith("-"):
            raise _unknown_argument(token)  # the launcher takes no positional arguments
        if token == "--":
            positional_only = True
        elif token.startswith("--"):
            name, eq, attached = token[2:].partition("=")
            flag = FLAGS_BY_LONG.get(name)
            if flag is None:
                raise _unknown_argument(f"--{name}")
            if not flag.takes_value:
                if eq:
                    raise _clap_error(
                        f"unexpected value '{attached}' for '{flag.display}' found; "
                        "no more were expected",
                        usage=True,
                    )
                _store(flag, True, values)
            else:
                _store(flag, _convert(flag, take_value(flag, attached if eq else None)), values)
        else:  # one or more short flags: -e, -p 80, -p80, -p=80, -eh
            rest = token[1:]
            while rest:
                flag = _FLAGS_BY_SHORT.get(rest[0])
                if flag is None:
                    raise _unknown_argument(f"-{rest[0]}")
                rest = rest[1:]
                if flag.takes_value:
                    attached = rest.removeprefix("=") or None
                    _store(flag, _convert(flag, take_value(flag, attached)), values)
                    break
                _store(flag, True, values)

    for flag in FLAGS:
        if flag.long not in values and flag.env and flag.env in env:
            value = _convert(flag, env[flag.env])
            if value is not None and value is not False:
                values[flag.long] = [value] if flag.repeatable else value
    for flag in FLAGS:
        if flag.long not in values and flag.default is not None:
            values[flag.long] = _convert(flag, flag.default)


# --- 2. the launcher's validation ---------------------------------------------------------


def _known(values: Mapping[str, Any], name: str) -> Any:
    """The value of a flag, or None when unset or only known as a placeholder."""
    value = values.get(name)
    return None if isinstance(value, _Opaque) else value


def _max_input_tokens(values: Mapping[str, Any]) -> int | None:
    for name in ("max-input-tokens", "max-input-length"):  # the second is the legacy spelling
        if (value := _known(values, name)) is not None:
            return value
    return None


def _launcher_error(variant: str, text: str) -> _Abort:
    # `main` returns Err(LauncherError): Rust prints its Debug form and exits with 1.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return _crash(f'Error: {variant}("{escaped}")')


def _crash(message: str) -> _Abort:
    return _Abort(REASON_ERROR, EXIT_LAUNCHER_ERROR, message)


def _visible_devices(env: Mapping[str, str], gpu_count: int) -> int:
    """`num_cuda_devices`: CUDA_VISIBLE_DEVICES, else what the device plugin exposes.

    The device plugin sets NVIDIA_VISIBLE_DEVICES to the pod's GPUs; without GPUs the CUDA
    image's own NVIDIA_VISIBLE_DEVICES=all still counts as one device.
    """
    if "CUDA_VISIBLE_DEVICES" in env:
        return len(env["CUDA_VISIBLE_DEVICES"].split(","))
    return max(gpu_count, 1)


def _find_num_shards(values: Mapping[str, Any], env: Mapping[str, str], gpu_count: int) -> int:
    sharded = values.get("sharded")
    num_shard = _known(values, "num-shard")
    if sharded is True and num_shard is None:
        devices = _visible_devices(env, gpu_count)
        if devices <= 1:
            raise _launcher_error(
                "NotEnoughCUDADevices", f"`sharded` is true but only found {devices} CUDA devices"
            )
        num_shard = devices
    elif sharded is True and num_shard <= 1:
        raise _launcher_error("ArgumentValidation", "`sharded` is true but `num_shard` <= 1")
    elif sharded is False and num_shard is None:
        num_shard = 1
    elif num_shard is None:
        # Unset `sharded` uses every visible GPU. `sharded false` with --num-shard N still
        # starts N shards: TGI's find_num_shards does not refuse that combination.
        num_shard = _visible_devices(env, gpu_count)
    if num_shard < 1:
        raise _launcher_error("ArgumentValidation", "`num_shard` cannot be < 1")
    return num_shard


def _validate(values: Mapping[str, Any], num_shard: int) -> None:
    if num_shard > 1 and values.get("quantize") == "exl2":
        raise _launcher_error(
            "ArgumentValidation", "Sharding is currently not supported with `exl2` quantization"
        )
    if "max-input-tokens" in values and "max-input-length" in values:
        raise _launcher_error(
            "ArgumentValidation",
            f"Both `max_input_tokens` ({values['max-input-tokens']}) and `max_input_length` "
            f"({values['max-input-length']}) are set. Please define only `max_input_tokens` as "
            "`max_input_length is deprecated for naming consistency.",
        )
    max_input = _max_input_tokens(values)
    max_total = _known(values, "max-total-tokens")
    if max_input is not None and max_total is not None and max_input >= max_total:
        raise _launcher_error(
            "ArgumentValidation",
            f"`max_input_tokens`({max_input}) must be < `max_total_tokens`({max_total})",
        )
    if _known(values, "validation-workers") == 0:
        raise _launcher_error("ArgumentValidation", "`validation_workers` must be > 0")
    max_batch_total = _known(values, "max-batch-total-tokens")
    if max_batch_total is not None and max_total is not None and max_total > max_batch_total:
        raise _launcher_error(
            "ArgumentValidation",
            "`max_total_tokens` must be <= `max_batch_total_tokens`. "
            f"Given: {max_total} and {max_batch_total}",
        )
    if values.get("ngrok"):
        for needed in ("ngrok-authtoken", "ngrok-edge"):
            if needed not in values:
                raise _launcher_error(
                    "ArgumentValidation", f"`{needed}` must be set when using ngrok tunneling"
                )


# --- 3. the shards --------------------------------------------------------------------------


def _shard_failure(exception: str, note: str = "") -> str:
    """The launcher's log when a shard process dies before it is ready (rank 0 shown)."""
    lines = [
        "ERROR shard-manager: text_generation_launcher: Shard complete standard error output:",
        "",
        "Traceback (most recent call last):",
        "  ...",
        exception,
        " rank=0",
        "ERROR text_generation_launcher: Shard 0 failed to start",
        "INFO text_generation_launcher: Shutting down shards",
        "Error: ShardCannotStart",
    ]
    return "\n".join([*lines, note] if note else lines)


_MOE_SIZE = re.compile(r"(?<![a-z0-9.])(\d+)x(\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.I)
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bm])(\d)?(?![a-z0-9])", re.I)
_SCALE = {"b": 1e9, "m": 1e6}


def parse_parameter_count(model_id: str) -> float | None:
    """Parameters guessed from a model's name: `7b`, `1.1B`, `350m`, `bloom-7b1`, `8x7B`."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    if match := _MOE_SIZE.search(name):  # experts x size: a rough upper bound
        return int(match[1]) * float(match[2]) * _SCALE[match[3].lower()]
    if match := _SIZE.search(name):
        size = float(match[1] + (f".{match[3]}" if match[3] else ""))  # bloom-7b1 = 7.1B
        return size * _SCALE[match[2].lower()]
    return None


def weight_precision(model_id: str, quantize: str | None, dtype: str | None, gpu: bool) -> str:
    """How the weights are stored in memory: a BYTES_PER_PARAM key."""
    if quantize and quantize != "compressed-tensors":
        return QUANTIZE_PRECISION[quantize]
    tokens = set(re.split(r"[-_./]", model_id.lower()))
    for precision, hints in NAME_PRECISION_HINTS.items():
        if tokens.intersection(hints):
            return precision
    if quantize:
        return QUANTIZE_PRECISION[quantize]
    return dtype or (GPU_DEFAULT_DTYPE if gpu else CPU_DEFAULT_DTYPE)


def guess_model_type(model_id: str) -> str | None:
    """The model_type of the model's config, from its name; None when no hint matches."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return next((kind for hint, kind in MODEL_TYPE_HINTS if re.search(hint, name)), None)


def _get_model_without_flash(model_id: str, num_shard: int) -> None:
    """get_model's error for this model without flash attention, if it raises one."""
    model_type = guess_model_type(model_id)
    if model_type in FLASH_ONLY:
        raise _crash(_shard_failure(FLASH_ONLY[model_type]))
    if num_shard <= 1 or model_type in SHARDED_WITHOUT_FLASH:
        return
    if model_type in SHARDED_NEEDS_FLASH:
        name = SHARDED_NEEDS_FLASH[model_type]
        raise _crash(
            _shard_failure(
                f"NotImplementedError: Sharded {name} requires Flash Attention enabled models."
            )
        )
    raise _crash(_shard_failure(AUTO_MODEL_SHARDED))


def _fmt_size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.2f} MiB"


def _torch_device_count(env: Mapping[str, str], gpu_count: int) -> int:
    if "CUDA_VISIBLE_DEVICES" in env:
        return min(gpu_count, len(env["CUDA_VISIBLE_DEVICES"].split(",")))
    return gpu_count


def _start_shards(
    values: Mapping[str, Any],
    env: Mapping[str, str],
    num_shard: int,
    gpu_count: int,
    gpu_memory_gib: float | None,
    memory_limit_bytes: int | None,
    flash: bool = True,
) -> None:
    if "dtype" in values and "quantize" in values:  # the server's CLI, before anything loads
        raise _crash(
            _shard_failure(
                "RuntimeError: Only 1 can be set between `dtype` and `quantize`, "
                "as they both decide how goes the final model."
            )
        )
    model_id = str(values["model-id"])
    params = parse_parameter_count(model_id)
    precision = weight_precision(
        model_id, _known(values, "quantize"), _known(values, "dtype"), gpu=gpu_count > 0
    )
    need_gib = None
    if params is not None:
        need_gib = params * BYTES_PER_PARAM[precision] * RUNTIME_OVERHEAD / GIB

    if gpu_count == 0:  # CPU: every shard in the container's memory, talking over gloo
        limit_gib = None if memory_limit_bytes is None else memory_limit_bytes / GIB
        if need_gib is not None and limit_gib is not None and need_gib > limit_gib:
            # The kernel's OOM killer ends the shard; the launcher only sees the signal.
            message = (
                "ERROR text_generation_launcher: Shard process was signaled to shutdown with "
                "signal 9\nERROR text_generation_launcher: Shard 0 failed to start\n"
                f"(sandbox estimate: {model_id} in {precision} needs ~{need_gib:.1f} GiB, over "
                f"the container's memory limit of {limit_gib:.1f} GiB)"
            )
            raise _Abort(REASON_OOM, EXIT_OOM_KILLED, message)
        return

    # initialize_torch_distributed: one process per GPU, then the per-process memory cap.
    if num_shard > _torch_device_count(env, gpu_count):
        raise _crash(_shard_failure("AssertionError: Each process is one gpu"))
    fraction = _known(values, "cuda-memory-fraction")
    fraction = 1.0 if fraction is None else fraction
    if math.isnan(fraction) or not 0 <= fraction <= 1:
        raise _crash(
            _shard_failure(f"ValueError: Invalid fraction value: {fraction}. Allowed range: 0~1")
        )
    if gpu_memory_gib is None:
        return
    allowed_gib = gpu_memory_gib * fraction
    # Sharded, each shard holds its part; one shard without flash attention spreads the layers
    # over every visible GPU (device_map="auto"); one shard with flash attention uses one GPU.
    devices = _torch_device_count(env, gpu_count)
    split = num_shard if num_shard > 1 else devices if not flash else 1
    per_gpu_gib = None if need_gib is None else need_gib / split
    if allowed_gib > 0 and (per_gpu_gib is None or per_gpu_gib <= allowed_gib):
        return
    torch_error = (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
        f"{_fmt_size((per_gpu_gib or 0.01) - allowed_gib)}. GPU 0 has a total capacity of "
        f"{gpu_memory_gib:.2f} GiB of which {_fmt_size(gpu_memory_gib - allowed_gib)} is free. "
        f"Including non-PyTorch memory, this process has {_fmt_size(allowed_gib)} memory in use. "
        "If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
    )
    need = "an unknown size" if per_gpu_gib is None else f"~{per_gpu_gib:.1f} GiB per GPU"
    note = (
        f"(sandbox estimate: {model_id} in {precision} over {split} GPU(s) needs {need}; "
        f"{allowed_gib:.1f} GiB allowed per GPU = {gpu_memory_gib:g} GiB x cuda-memory-fraction "
        f"{fraction:g})"
    )
    raise _Abort(REASON_OOM, EXIT_OOM_KILLED, _shard_failure(torch_error, note))


# --- 4. the router ------------------------------------------------------------------------------


def _start_router(values: Mapping[str, Any]) -> None:
    """The router's checks once the shards are up (V100s have no chunked prefill, so it applies)."""
    max_input = _max_input_tokens(values)
    prefill = _known(values, "max-batch-prefill-tokens")
    prefill = DEFAULT_MAX_BATCH_PREFILL_TOKENS if prefill is None else prefill
    problem = None
    if max_input is not None and max_input > prefill:
        problem = (
            "`max_batch_prefill_tokens` must be >= `max_input_tokens`. "
            f"Given: {prefill} and {max_input}"
        )
    elif _known(values, "max-batch-size") == 0:
        problem = "`max_batch_size` must be > 0"
    if problem:  # the router exits with its own Err; the launcher then gives up
        raise _crash(
            f'Error: ArgumentValidation("{problem}")\n'
            "ERROR text_generation_launcher: Webserver Crashed\n"
            "INFO text_generation_launcher: Shutting down shards\n"
            "Error: WebserverFailed"
        )
