# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How TGI uses the GPUs of one pod, by architecture and GPU type: the one home of that rule.

Read in TGI's source (v3.3, `server/text_generation_server/models/__init__.py` and
`causal_lm.py`), not yet run on a V100, hence the override (`tgi_multi_gpu_mode`):

- Without `--num-shard` the launcher starts one shard per visible GPU, so the collection always
  says how many.
- Tensor sharding (`--num-shard N`) needs TGI's flash attention classes for most current
  architectures, and flash attention needs compute capability 8.0: on a V100 (7.0) a sharded
  Llama, Mistral, Qwen2 or Gemma dies with "Sharded ... requires Flash Attention enabled
  models". BLOOM, MPT, GPT-NeoX, OPT and T5 have sharded classes of their own.
- Unsharded, those models load through the plain transformers path (`CausalLM.fallback`), which
  passes `device_map="auto"` when more than one CUDA device is visible: with `--num-shard 1` and
  N GPUs, the layers are spread over the N GPUs (a layer split: N x the memory, one GPU busy at a
  time, no NCCL). With flash attention (compute capability 8.0) TGI takes its flash classes,
  which load onto one GPU: a layer split would leave the others idle.
- Some architectures run only with flash attention, sharded or not (FACTS.md: Mistral and
  Mixtral; TGI's source: the vision-language models).

Pure Python, no Ansible imports.
"""

from __future__ import annotations

from dataclasses import dataclass

CPU = "cpu"
SINGLE = "single-gpu"
TENSOR_SHARDING = "tensor-sharding"
LAYER_SPLIT = "layer-split"
AUTO = "auto"
# What tgi_multi_gpu_mode may say: auto, or force one of the two multi-GPU modes.
FORCEABLE = (AUTO, TENSOR_SHARDING, LAYER_SPLIT)

FLASH_ATTENTION_FROM = (8, 0)
# model_type values with sharded classes that need no flash attention.
SHARDING_WITHOUT_FLASH_ATTENTION = frozenset({"bloom", "mpt", "gpt_neox", "opt", "t5"})
# model_type values TGI runs only with flash attention, on one GPU or many.
FLASH_ATTENTION_ONLY = frozenset(
    {
        "mistral",
        "mixtral",
        "idefics",
        "idefics2",
        "idefics3",
        "llava_next",
        "mllama",
        "paligemma",
        "qwen2_vl",
        "qwen2_5_vl",
    }
)
UNCONFIRMED = "read in TGI's source, not yet confirmed on a V100"


def runs_on_cpu(gpu_count: object) -> bool:
    """Whether a pod with `gpu_count` GPUs runs TGI on the CPU: it asks for none.

    The collection's one answer to that question: the pod, the capacity check, the sizing and
    the summaries all ask here (a count that is not a number is no CPU request).
    """
    return gpu_count == 0 and not isinstance(gpu_count, bool)


@dataclass(frozen=True)
class MultiGpu:
    """How TGI will use the pod's GPUs, and whether that works (None: not known)."""

    mode: str
    works: bool | None
    reason: str


def _cc(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


def choose(
    architecture: str | None,
    capability: tuple[int, int] | None,
    gpu_count: int,
    forced: str = AUTO,
) -> MultiGpu:
    """The mode for `gpu_count` GPUs of compute capability `capability` (None: unknown) and a
    model of `architecture` (its config's model_type, None when unknown); `forced` is
    tgi_multi_gpu_mode."""
    if runs_on_cpu(gpu_count):
        return MultiGpu(CPU, True, "no GPU: TGI runs on the CPU")
    if gpu_count == 1:
        return MultiGpu(SINGLE, True, "one GPU")
    flash = capability is not None and capability >= FLASH_ATTENTION_FROM
    cc = _cc(capability) if capability else "unknown"
    name = architecture or "this architecture"
    if not flash and architecture in FLASH_ATTENTION_ONLY:
        return MultiGpu(
            TENSOR_SHARDING if forced == TENSOR_SHARDING else LAYER_SPLIT,
            False,
            f"{name} models run only with flash attention, which compute capability {cc} "
            f"lacks: they can neither be sharded nor split by layers over {gpu_count} GPUs",
        )
    if forced == LAYER_SPLIT or (forced == AUTO and not flash and (
        architecture not in SHARDING_WITHOUT_FLASH_ATTENTION
    )):  # fmt: skip
        if flash:
            return MultiGpu(
                LAYER_SPLIT,
                False,
                f"with flash attention (compute capability {cc}) TGI loads {name} models onto "
                f"one GPU: a layer split would leave {gpu_count - 1} of {gpu_count} idle; use "
                "tensor sharding (tgi_multi_gpu_mode: auto)",
            )
        works = True if architecture else None
        return MultiGpu(
            LAYER_SPLIT,
            works,
            f"layer split: --num-shard 1 with {gpu_count} GPUs visible, TGI's transformers path "
            f"spreads the layers of {name} models over them (device_map=auto; {gpu_count} x "
            f"the memory, one GPU computing at a time; {UNCONFIRMED})"
            + ("" if architecture else "; the architecture is unknown"),
        )
    if flash or architecture in SHARDING_WITHOUT_FLASH_ATTENTION:
        how = "with flash attention" if flash else "without flash attention"
        return MultiGpu(
            TENSOR_SHARDING, True, f"tensor sharding over {gpu_count} GPUs ({name} shards {how})"
        )
    if architecture is None:
        return MultiGpu(
            TENSOR_SHARDING,
            None,
            f"tensor sharding over {gpu_count} GPUs: whether TGI can shard this architecture "
            f"without flash attention (compute capability {cc}) is unknown; most cannot",
        )
    return MultiGpu(
        TENSOR_SHARDING,
        False,
        f"TGI shards {architecture} models only with flash attention, which compute capability "
        f'{cc} lacks: {gpu_count} shards would fail at start-up ("Sharded ... requires Flash '
        'Attention enabled models"); a layer split works (tgi_multi_gpu_mode: auto)',
    )
