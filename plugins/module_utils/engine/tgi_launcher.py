# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What TGI's launcher (text-generation-launcher of TGI 3.3) accepts: its flags, which of them
take a value or may repeat, its dtypes and quantization methods.

This is TGI's command-line contract as data, the one copy the collection and the sandbox's TGI
stand-in both check against (a contract test compares it with TGI's own documentation when the
reference data is present). What the collection does with it (which variable sets which flag)
is workload/tgi_setting_rules.py's.
"""

from __future__ import annotations

# The launcher's long flags (without "--") -> whether the flag takes a value, in the order of
# `text-generation-launcher --help` (TGI 3.3). A contract test compares it with TGI's docs.
LAUNCHER_FLAGS: dict[str, bool] = {
    "model-id": True,
    "revision": True,
    "validation-workers": True,
    "sharded": True,
    "num-shard": True,
    "quantize": True,
    "speculate": True,
    "dtype": True,
    "kv-cache-dtype": True,
    "trust-remote-code": False,
    "max-concurrent-requests": True,
    "max-best-of": True,
    "max-stop-sequences": True,
    "max-top-n-tokens": True,
    "max-input-tokens": True,
    "max-input-length": True,
    "max-total-tokens": True,
    "waiting-served-ratio": True,
    "max-batch-prefill-tokens": True,
    "max-batch-total-tokens": True,
    "max-waiting-tokens": True,
    "max-batch-size": True,
    "cuda-graphs": True,
    "hostname": True,
    "port": True,
    "prometheus-port": True,
    "shard-uds-path": True,
    "master-addr": True,
    "master-port": True,
    "huggingface-hub-cache": True,
    "weights-cache-override": True,
    "disable-custom-kernels": False,
    "cuda-memory-fraction": True,
    "rope-scaling": True,
    "rope-factor": True,
    "json-output": False,
    "otlp-endpoint": True,
    "otlp-service-name": True,
    "cors-allow-origin": True,
    "api-key": True,
    "watermark-gamma": True,
    "watermark-delta": True,
    "ngrok": False,
    "ngrok-authtoken": True,
    "ngrok-edge": True,
    "tokenizer-config-path": True,
    "disable-grammar-support": False,
    "env": False,
    "max-client-batch-size": True,
    "lora-adapters": True,
    "usage-stats": True,
    "payload-limit": True,
    "enable-prefill-logprobs": False,
    "graceful-termination-timeout": True,
    "help": False,
    "version": False,
}
# Flags clap accepts more than once (a list of values); any other flag may appear only once.
REPEATABLE_FLAGS = frozenset({"cors-allow-origin"})

DTYPES = ("float16", "bfloat16")
QUANTIZE_METHODS = (
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
