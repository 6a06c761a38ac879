"""What a command run through `pods/exec` prints in a simulated container: nvidia-smi and env.

Pure functions: the kubelet (icc_sandbox.kubelet) reads the pod, its neighbours on the node and
the Secrets through the API, builds a ContainerView and calls `run_command`.

- `nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]` prints one row per GPU the
  container holds (its `nvidia.com/gpu` limit), in nvidia-smi's CSV form: ", " between cells, the
  header naming each field with its unit in brackets (`memory.used [MiB]`, kept with nounits),
  values with the unit unless nounits, `[N/A]` where a V100 PCIe has nothing to say (fan speed:
  it is passively cooled). `nvidia-smi -L` lists the GPUs; plain `nvidia-smi` prints a short
  table (not the full layout). An unknown field is `Field "<f>" is not a valid field to query.`
  and any other unknown argument nvidia-smi's `Invalid combination of input arguments...`, both
  exit 2 (nvidia-smi's "invalid argument" code).
- The figures: the product name from the node (nodes.yml `gpu_product`, e.g.
  `Tesla-V100-PCIE-16GB` -> `Tesla V100-PCIE-16GB`), memory.total from `gpu_memory_gib`, the
  driver DRIVER_VERSION (an R550 release: the CUDA 12.4 runtime of TGI 3.x images needs a 550
  driver, and R550 still supports Volta). memory.used follows the model the launcher simulation
  loads: a CUDA context while the weights download, then the weights (its size estimate from the
  model's name) spread as TGI would, and once Ready the KV cache on top (filling the GPU up to
  cuda-memory-fraction where TGI has flash attention, compute capability 8.0+). Utilisation,
  temperature and power are functions of time (slow sine waves, different per GPU): near idle
  while TGI waits, high while the TGI stand-in has a request in flight or answered one in the
  last BUSY_SECONDS.
- A container without GPUs has no nvidia-smi: the NVIDIA container runtime mounts the binary
  only into containers that get GPUs, so the runtime refuses the exec with containerd's
  `executable file not found in $PATH` (an internal error status, no exit code) - the same
  answer as for any command the simulation does not know.
- `env` (and `printenv [NAME]`) prints the container's environment as the runtime gives it:
  PATH, HOSTNAME, the image's variables (for TGI those of its CUDA base image and its own), the
  pod spec's env with `$(VAR)` references expanded and `valueFrom` resolved to the values (as a
  real container sees them), NVIDIA_VISIBLE_DEVICES set to the UUIDs of the GPUs held (what the
  device plugin does), the kubernetes Service's KUBERNETES_* variables and HOME. Service links
  of other Services are left out.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from icc_sandbox.container_spec import (
    app_for,
    gpu_count,
    launch_outcome,
    launcher_args,
    plain_env,
    quantity_bytes,
    serve_outcome,
)
from icc_sandbox.exec_stream import ExecOutput
from icc_sandbox.nodes import JSON, NodeSpec, Timing
from icc_sandbox.pod_simulation import ready_delay
from icc_sandbox.tgi_launcher import (
    BYTES_PER_PARAM,
    FLASH_ATTENTION_FROM,
    launcher_values,
    parse_parameter_count,
    weight_precision,
)
from icc_sandbox.vllm_serve import UTILIZATION as VLLM_GPU_MEMORY_UTILIZATION
from icc_sandbox.vllm_serve import model_facts
from icc_sandbox.vllm_serve import parse as parse_serve

DRIVER_VERSION = "550.127.05"
CUDA_VERSION = "12.4"  # what nvidia-smi reports for the driver (its highest CUDA)
POWER_LIMIT_W = 250.0  # V100 and V100S PCIe
CUDA_CONTEXT_MIB = 420  # a process's CUDA context on a V100 with torch loaded
KV_CACHE_FILL = 0.95  # of cuda-memory-fraction x total: TGI's paged KV cache with flash attention
BUSY_SECONDS = 5.0  # a request answered this recently still counts as load
DOWNLOAD_SHARE = 0.8  # of the time to Ready spent downloading (as container_logs has it)
NA = "[N/A]"
# Bus ids of a four-GPU PCIe server, by slot on the node.
BUS_IDS = ("00000000:3B:00.0", "00000000:5E:00.0", "00000000:AF:00.0", "00000000:D8:00.0")

# The image's own environment (Dockerfile ENV) by kind: TGI's CUDA base image and TGI's ENV.
CONTAINERD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ENV: dict[str, list[tuple[str, str]]] = {
    "tgi": [
        ("PATH", "/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:" + CONTAINERD_PATH),
        ("NVARCH", "x86_64"),
        ("NVIDIA_REQUIRE_CUDA", "cuda>=12.4"),
        ("NV_CUDA_CUDART_VERSION", "12.4.99-1"),
        ("CUDA_VERSION", "12.4.0"),
        ("LD_LIBRARY_PATH", "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"),
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
        ("CONDA_PREFIX", "/opt/conda"),
        ("HF_HOME", "/data"),
        ("HF_HUB_ENABLE_HF_TRANSFER", "1"),
        ("PORT", "80"),
    ],
    # vllm/vllm-openai:v0.14.1 (docker/Dockerfile): nvidia/cuda:12.9.1-base-ubuntu22.04 and
    # the vllm-base and vllm-openai stages' ENV.
    "vllm": [
        ("PATH", "/usr/local/nvidia/bin:/usr/local/cuda/bin:" + CONTAINERD_PATH),
        ("NVARCH", "x86_64"),
        ("NVIDIA_REQUIRE_CUDA", "cuda>=12.9"),
        ("CUDA_VERSION", "12.9.1"),
        ("LD_LIBRARY_PATH", "/usr/local/nvidia/lib64:/usr/local/cuda/lib64"),
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
        ("VLLM_USAGE_SOURCE", "production-docker-image"),
    ],
    "open-webui": [
        ("PATH", CONTAINERD_PATH),
        ("ENV", "prod"),
        ("PORT", "8080"),
        ("DATA_DIR", "/app/backend/data"),
    ],
}

# nvidia-smi --query-gpu fields: canonical name -> unit in the header (None: none), and aliases.
QUERY_FIELDS: dict[str, str | None] = {
    "timestamp": None,
    "driver_version": None,
    "count": None,
    "name": None,
    "serial": None,
    "uuid": None,
    "pci.bus_id": None,
    "index": None,
    "pstate": None,
    "persistence_mode": None,
    "compute_mode": None,
    "compute_cap": None,
    "fan.speed": "%",
    "utilization.gpu": "%",
    "utilization.memory": "%",
    "memory.total": "MiB",
    "memory.used": "MiB",
    "memory.free": "MiB",
    "temperature.gpu": None,
    "power.draw": "W",
    "power.limit": "W",
    "power.max_limit": "W",
    "clocks.sm": "MHz",
    "clocks.mem": "MHz",
    "clocks.max.sm": "MHz",
    "mig.mode.current": None,
}
FIELD_ALIASES = {
    "gpu_name": "name",
    "gpu_serial": "serial",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
    "pci.bus_id": "pci.bus_id",
    "temperature.gpu": "temperature.gpu",
    "enforced.power.limit": "power.limit",
    "clocks.current.sm": "clocks.sm",
    "clocks.current.memory": "clocks.mem",
    "clocks.max.sm": "clocks.max.sm",
    "utilization.memory": "utilization.memory",
}
INVALID_ARGUMENTS = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."
EXIT_INVALID_ARGUMENT = 2


@dataclass(frozen=True)
class ContainerView:
    """One running container as exec sees it, with what the kubelet looked up."""

    pod: JSON
    container: JSON
    node: NodeSpec
    started: float  # when the pod started (status.startTime)
    now: float
    timing: Timing = field(default_factory=Timing)
    gpu_slots: tuple[int, ...] = ()  # the node's GPUs this container holds, in order
    env: tuple[tuple[str, str], ...] = ()  # from container_env
    busy: bool = False  # the TGI stand-in has, or just had, a request


# --- GPUs ------------------------------------------------------------------------------------


def gpu_name(node: NodeSpec) -> str:
    """nvidia-smi's product name from the node's label form (spaces became dashes there)."""
    product = node.gpu_product or node.gpu_type or "NVIDIA GPU"
    for brand in ("Tesla-", "NVIDIA-", "Quadro-"):
        if product.startswith(brand):
            return brand[:-1] + " " + product[len(brand) :]
    return product


def gpu_uuid(node: NodeSpec, slot: int) -> str:
    """A fixed UUID per physical GPU (node and slot), in nvidia-smi's `GPU-...` form."""
    digest = hashlib.sha256(f"{node.name}/gpu/{slot}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def bus_id(slot: int) -> str:
    if slot < len(BUS_IDS):
        return BUS_IDS[slot]
    return f"00000000:{0x18 + slot * 0x10:02X}:00.0"


def gpu_slots(pods: list[JSON], node: NodeSpec) -> dict[tuple[str, str], tuple[int, ...]]:
    """Which of the node's GPUs each container holds, by (pod uid, container name): handed out
    in the order the pods were created, as a device plugin would have allocated them. Pods that
    ended or are being deleted hold none."""
    holders = [
        pod
        for pod in pods
        if pod.get("spec", {}).get("nodeName") == node.name
        and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]
    holders.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["uid"]))
    free = list(range(node.gpus))
    slots: dict[tuple[str, str], tuple[int, ...]] = {}
    for pod in holders:
        for container in pod["spec"]["containers"]:
            wanted = gpu_count(container)
            slots[(pod["metadata"]["uid"], container["name"])] = tuple(free[:wanted])
            free = free[wanted:]
    return slots


def _wave(now: float, slot: int, period: float) -> float:
    """0..1, a slow sine of time; each GPU slot has its own phase."""
    return 0.5 + 0.5 * math.sin(2 * math.pi * now / period + 1.3 * slot)


def _memory_used_mib(view: ContainerView, position: int, total_mib: int) -> tuple[int, bool]:
    """(MiB used on the container's GPU number `position`, whether a process holds it)."""
    container, node = view.container, view.node
    app = app_for(container)
    if app.kind == "vllm":
        return _vllm_memory_used_mib(view, position, total_mib)
    if app.kind != "tgi":
        return 0, False
    outcome = launch_outcome(container, node, view.pod)
    args, env = launcher_args(container), plain_env(container)
    values = launcher_values(args, env) or {}
    capability = tuple(int(p) for p in (node.gpu_compute_capability or "8.0").split("."))
    flash = capability >= FLASH_ATTENTION_FROM
    shards = max(outcome.num_shard, 1)
    used_gpus = shards if shards > 1 else (len(view.gpu_slots) if not flash else 1)
    if position >= used_gpus:
        return 0, False
    quantize = values.get("quantize") if isinstance(values.get("quantize"), str) else None
    dtype = values.get("dtype") if isinstance(values.get("dtype"), str) else None
    precision = weight_precision(outcome.model_id, quantize, dtype, gpu=True)
    params = parse_parameter_count(outcome.model_id)
    if params is None:
        weights_mib = total_mib * 0.4 / used_gpus
    else:
        weights_mib = params * BYTES_PER_PARAM[precision] / (1024 * 1024) / used_gpus
    fraction = values.get("cuda-memory-fraction")
    fraction = fraction if isinstance(fraction, float) and 0 < fraction <= 1 else 1.0
    ceiling = total_mib * fraction
    delay = ready_delay(view.pod, app, view.timing)
    elapsed = view.now - view.started
    if elapsed < delay * DOWNLOAD_SHARE:  # downloading: the shard waits with its context
        return CUDA_CONTEXT_MIB, True
    if elapsed < delay:  # loading the weights
        progress = (elapsed - delay * DOWNLOAD_SHARE) / max(delay * (1 - DOWNLOAD_SHARE), 0.001)
        return round(min(CUDA_CONTEXT_MIB + weights_mib * progress, ceiling)), True
    if flash:  # the paged KV cache takes what is left under the memory fraction
        used = max(ceiling * KV_CACHE_FILL, CUDA_CONTEXT_MIB + weights_mib)
    else:  # the transformers path: activations and cache grow with the batch
        used = CUDA_CONTEXT_MIB + weights_mib * (1.12 if view.busy else 1.05)
    return round(min(used, ceiling)), True


def _vllm_memory_used_mib(view: ContainerView, position: int, total_mib: int) -> tuple[int, bool]:
    """vLLM's worker on each tensor-parallel GPU: its context while the weights download, the
    weights as they load, then the share of the GPU it reserves (--gpu-memory-utilization)."""
    outcome = serve_outcome(view.container, view.node)
    if position >= outcome.tensor_parallel:
        return 0, False
    values = parse_serve(view.container.get("args", []))[1]
    share = float(values.get("gpu-memory-utilization") or VLLM_GPU_MEMORY_UTILIZATION)
    weights_mib = model_facts(outcome.model).parameters * 2 / 2**20 / outcome.tensor_parallel
    delay = ready_delay(view.pod, app_for(view.container), view.timing)
    elapsed = view.now - view.started
    if elapsed < delay * DOWNLOAD_SHARE:
        return CUDA_CONTEXT_MIB, True
    if elapsed < delay:
        progress = (elapsed - delay * DOWNLOAD_SHARE) / max(delay * (1 - DOWNLOAD_SHARE), 0.001)
        return round(min(CUDA_CONTEXT_MIB + weights_mib * progress, total_mib)), True
    return round(total_mib * share), True


def gpu_readings(view: ContainerView) -> list[dict[str, Any]]:
    """Every query field's value (a number, text or None) for each GPU of the container."""
    node = view.node
    total = int((node.gpu_memory_gib or 0) * 1024)
    readings = []
    for position, slot in enumerate(view.gpu_slots):
        used, in_use = _memory_used_mib(view, position, total)
        busy = view.busy and in_use
        if busy:
            utilization = round(68 + 27 * _wave(view.now, slot, 20))
            temperature = round(56 + 10 * _wave(view.now, slot, 120))
            power = 150 + 80 * _wave(view.now, slot, 30)
            sm_clock = 1380
        elif in_use:
            utilization = round(2 * _wave(view.now, slot, 45))
            temperature = round(35 + 3 * _wave(view.now, slot, 300))
            power = 36 + 3 * _wave(view.now, slot, 60)
            sm_clock = 1230
        else:
            utilization = 0
            temperature = round(31 + 3 * _wave(view.now, slot, 300))
            power = 24.5 + 2 * _wave(view.now, slot, 60)
            sm_clock = 135
        readings.append(
            {
                "timestamp": _timestamp(view.now),
                "driver_version": DRIVER_VERSION,
                "count": len(view.gpu_slots),
                "name": gpu_name(node),
                "serial": str(1560000000000 + int(gpu_uuid(node, slot)[4:12], 16) % 10**9),
                "uuid": gpu_uuid(node, slot),
                "pci.bus_id": bus_id(slot),
                "index": position,
                "pstate": "P0",
                "persistence_mode": "Enabled",
                "compute_mode": "Default",
                "compute_cap": node.gpu_compute_capability,
                "fan.speed": None,
                "utilization.gpu": utilization,
                "utilization.memory": round(utilization * 0.6),
                "memory.total": total,
                "memory.used": used,
                "memory.free": total - used,
                "temperature.gpu": temperature,
                "power.draw": round(power, 2),
                "power.limit": POWER_LIMIT_W,
                "power.max_limit": POWER_LIMIT_W,
                "clocks.sm": sm_clock,
                "clocks.mem": 877,
                "clocks.max.sm": 1380,
                "mig.mode.current": None,
            }
        )
    return readings


def _timestamp(now: float) -> str:
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _cell(name: str, value: Any, units: bool) -> str:
    if value is None:
        return NA
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    unit = QUERY_FIELDS[name]
    return f"{text} {unit}" if unit and units else text


def _query_csv(view: ContainerView, fields_text: str, options: set[str]) -> ExecOutput:
    fields = []
    for raw in fields_text.split(","):
        name = raw.strip()
        canonical = FIELD_ALIASES.get(name, name)
        if canonical not in QUERY_FIELDS:
            return ExecOutput(
                stdout=f'Field "{name}" is not a valid field to query.\n\n',
                exit_code=EXIT_INVALID_ARGUMENT,
            )
        fields.append(canonical)
    lines = []
    if "noheader" not in options:
        lines.append(
            ", ".join(f"{f} [{QUERY_FIELDS[f]}]" if QUERY_FIELDS[f] else f for f in fields)
        )
    units = "nounits" not in options
    for reading in gpu_readings(view):
        lines.append(", ".join(_cell(f, reading[f], units) for f in fields))
    return ExecOutput(stdout="".join(line + "\n" for line in lines))


def _list_gpus(view: ContainerView) -> ExecOutput:
    return ExecOutput(
        stdout="".join(
            f"GPU {r['index']}: {r['name']} (UUID: {r['uuid']})\n" for r in gpu_readings(view)
        )
    )


def _summary_table(view: ContainerView) -> ExecOutput:
    """A short form of nvidia-smi's default table (the real one has more columns and boxes)."""
    rule = "+" + "-" * 77 + "+"
    lines = [
        _timestamp(view.now)[:19].replace("/", "-"),
        rule,
        f"| NVIDIA-SMI {DRIVER_VERSION:<21} Driver Version: {DRIVER_VERSION:<13} "
        f"CUDA Version: {CUDA_VERSION:<6}|",
        rule,
        "| GPU  Name                  Bus-Id            Temp  Pwr:Usage/Cap   Memory-Usage     |",
        rule,
    ]
    for r in gpu_readings(view):
        memory = f"{r['memory.used']}MiB / {r['memory.total']}MiB"
        power = f"{r['power.draw']:.0f}W / {r['power.limit']:.0f}W"
        lines.append(
            f"| {r['index']:>3}  {r['name']:<21} {r['pci.bus_id']:<17} "
            f"{r['temperature.gpu']:>3}C  {power:<15} {memory:<17}|"
        )
    lines.append(rule)
    return ExecOutput(stdout="\n".join(lines) + "\n")


def nvidia_smi(args: list[str], view: ContainerView) -> ExecOutput:
    """nvidia-smi with `args` in a container that holds GPUs."""
    if not args:
        return _summary_table(view)
    if args in (["-L"], ["--list-gpus"]):
        return _list_gpus(view)
    query, formats = None, None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, has_value, value = arg.partition("=")
        if name in ("--query-gpu", "--format") and not has_value and rest:
            value, has_value = rest.pop(0), True
        if name == "--query-gpu" and has_value and value:
            query = value
        elif name == "--format" and has_value and value:
            formats = {part.strip() for part in value.split(",")}
        else:
            return ExecOutput(stdout=INVALID_ARGUMENTS + "\n", exit_code=EXIT_INVALID_ARGUMENT)
    if query is None or formats is None or "csv" not in formats:
        return ExecOutput(stdout=INVALID_ARGUMENTS + "\n", exit_code=EXIT_INVALID_ARGUMENT)
    if not formats <= {"csv", "noheader", "nounits"}:
        return ExecOutput(stdout=INVALID_ARGUMENTS + "\n", exit_code=EXIT_INVALID_ARGUMENT)
    return _query_csv(view, query, formats)


# --- the environment ---------------------------------------------------------------------------

# (kind, namespace, name) -> the object's data as text by key, None when it does not exist
Lookup = Callable[[str, str, str], "dict[str, str] | None"]
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, known: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` stands for `$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return known[name] if name in known else match.group(0)

    return _REFERENCE.sub(substitute, value)


def _field_ref(pod: JSON, path: str) -> str | None:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        kind, _, key = path.partition("['")
        return (meta.get(kind.split(".")[1]) or {}).get(key.rstrip("']"))
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
    }.get(path)


def container_env(
    pod: JSON,
    container: JSON,
    node: NodeSpec,
    slots: tuple[int, ...],
    lookup: Lookup,
    kubernetes_ip: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The environment `env` prints in this container, in the runtime's order."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {"PATH": CONTAINERD_PATH, "HOSTNAME": pod["metadata"]["name"]}
    env.update(IMAGE_ENV.get(app_for(container).kind, []))

    def from_source(kind: str, ref: JSON) -> dict[str, str] | None:
        return lookup(kind, namespace, ref.get("name", ""))

    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind in ("secret", "configMap"):
            ref = source.get(f"{kind}Ref")
            data = from_source(kind, ref) if ref else None
            for key, value in sorted((data or {}).items()):
                env[prefix + key] = value
    for entry in container.get("env", []):
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = expand(entry.get("value", ""), env)
            continue
        source = entry["valueFrom"]
        value = None
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "secret" if "secretKeyRef" in source else "configMap"
            ref = source[f"{kind}KeyRef"]
            value = (from_source(kind, ref) or {}).get(ref.get("key", ""))
        elif "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            value = _resource_field(container, source["resourceFieldRef"], node)
        if value is not None:  # a missing optional reference leaves the variable out
            env[name] = value
    if slots:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpu_uuid(node, slot) for slot in slots)
    if kubernetes_ip:
        env |= {
            "KUBERNETES_SERVICE_HOST": kubernetes_ip,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{kubernetes_ip}:443",
            "KUBERNETES_PORT_443_TCP": f"tcp://{kubernetes_ip}:443",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": "443",
            "KUBERNETES_PORT_443_TCP_ADDR": kubernetes_ip,
        }
    env.setdefault("HOME", "/root")
    return tuple(env.items())


def _resource_field(container: JSON, ref: JSON, node: NodeSpec) -> str | None:
    """limits/requests as the kubelet gives them: whole units (cores, bytes), node capacity
    for an unset limit."""
    kind, _, resource = ref.get("resource", "").partition(".")
    value = container.get("resources", {}).get(kind, {}).get(resource)
    if value is None and kind == "limits":
        value = {"cpu": node.cpu, "memory": node.memory}.get(resource)
    if value is None:
        return None
    if resource == "cpu":
        text = str(value)
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
        return str(max(1, math.ceil(cores)))
    size = quantity_bytes(str(value))
    return None if size is None else str(size)


def _env(args: list[str], view: ContainerView) -> ExecOutput:
    """`env [NAME=value]... [command [arg]...]`, as coreutils' env does it."""
    env = dict(view.env)
    while args and "=" in args[0] and not args[0].startswith("="):
        name, _, value = args.pop(0).partition("=")
        env[name] = value
    if not args:
        return ExecOutput(stdout="".join(f"{name}={value}\n" for name, value in env.items()))
    done = run_command(args, replace(view, env=tuple(env.items())))
    if done.runtime_error is not None:  # env itself ran: it reports the missing program
        return ExecOutput(stderr=f"env: '{args[0]}': No such file or directory\n", exit_code=127)
    return done


def _printenv(args: list[str], view: ContainerView) -> ExecOutput:
    env = dict(view.env)
    if not args:
        return _env([], view)
    missing = any(name not in env for name in args)
    out = "".join(env[name] + "\n" for name in args if name in env)
    return ExecOutput(stdout=out, exit_code=1 if missing else 0)


# --- dispatch ---------------------------------------------------------------------------------

_BIN_DIRS = ("/usr/local/sbin/", "/usr/local/bin/", "/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/")


def _program(path: str) -> str:
    for folder in _BIN_DIRS:
        if path.startswith(folder) and "/" not in path[len(folder) :]:
            return path[len(folder) :]
    return path


def _exec_id(view: ContainerView, argv: list[str]) -> str:
    seed = f"{view.pod['metadata'].get('uid', '')}/{view.container['name']}/{argv}/{view.now}"
    return hashlib.sha256(seed.encode()).hexdigest()


def _not_found(program: str, view: ContainerView, argv: list[str] | None = None) -> ExecOutput:
    """containerd's error for an executable that is not in the container."""
    exec_id = _exec_id(view, argv or [program])
    return ExecOutput(
        exit_code=None,
        runtime_error=(
            f'failed to exec in container: failed to start exec "{exec_id}": OCI runtime exec '
            "failed: exec failed: unable to start container process: exec: "
            f'"{program}": executable file not found in $PATH: unknown'
        ),
    )


def run_command(argv: list[str], view: ContainerView) -> ExecOutput:
    """What `argv` does in the container."""
    if not argv:
        return ExecOutput(exit_code=None, runtime_error="command must not be empty")
    program = _program(argv[0])
    if program == "nvidia-smi" and view.gpu_slots:
        return nvidia_smi(argv[1:], view)
    if program == "env":
        return _env(argv[1:], view)
    if program == "printenv":
        return _printenv(argv[1:], view)
    return _not_found(argv[0], view, argv)
