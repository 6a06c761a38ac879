#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.gpu_monitor; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_monitor
short_description: Sample TGI's GPUs and its own metrics over time, into a CSV file and a plot
version_added: 0.1.0
description:
  - Every O(interval) seconds, O(samples) times, reads per GPU of the TGI pod its utilisation,
    memory used and total, temperature and power (C(nvidia-smi --query-gpu ... --format=csv,nounits)
    run in O(container) by exec), and TGI's own figures from its C(/metrics) endpoint, read through
    the API server's service proxy (queue size, batch size, requests, generated tokens, mean
    time per token).
  - Prints one line per sample and writes C(<namespace>-<time>.csv) into O(directory) as it
    goes (one row per sample and GPU, numbers without units), then C(<namespace>-<time>.png)
    (utilisation, memory in GiB, and TGI's tokens per second and queue over time).
  - When the exec into the pod fails (no right to C(pods/exec), a node that does not allow it,
    no C(nvidia-smi) in the image), it says so once and goes on with TGI's metrics alone; the
    GPU columns of the CSV file stay empty. When C(/metrics) cannot be read, the TGI columns of
    that sample stay empty.
  - Runs on the Ansible controller as an action plugin; only reads from the cluster. Several
    inventory hosts (namespaces) are sampled at the same time, one task each.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options,
   haw.icc.tgi_server]
options:
  engine:
    description:
      - The inference server of the namespace (the inventory's C(icc_engine)). For V(vllm) the
        figures come from vLLM's C(/metrics) under the same columns (waiting requests as the
        queue, running ones as the batch, finished requests, prompt and generated tokens), and
        each line adds vLLM's KV cache usage.
    type: str
    choices: [tgi, vllm]
    default: tgi
  service_port:
    description:
      - Port of TGI's Service for the proxy, by name or number (the role names it V(http)).
    type: str
    default: http
  interval:
    description: Seconds between two samples (at least 1).
    type: int
    default: 5
  samples:
    description: How many samples to take (at least 1).
    type: int
    default: 12
  directory:
    description:
      - Folder for the CSV file and the plot; created when missing. Relative to the directory
        C(ansible-playbook) runs in.
    type: path
    default: .
  gpu_command:
    description:
      - A command run on the controller instead of the exec into the pod, which must print what
        C(nvidia-smi --query-gpu=<fields> --format=csv,nounits) prints (header line included).
        For tests and for clusters where exec is not allowed but another source of the figures
        exists.
      - A string is split like a shell would (no shell runs it). It gets the namespace and the
        pod in the environment variables E(ICC_MONITOR_NAMESPACE) and E(ICC_MONITOR_POD).
    type: raw
  plot:
    description: Whether to draw the PNG plot (needs C(matplotlib) on the controller).
    type: bool
    default: true
attributes:
  check_mode:
    support: partial
    details: In check mode nothing is sampled or written; the task says what it would do.
notes:
  - Reading C(/metrics) needs the right to C(get) C(services/proxy) in the namespace; the exec
    needs C(create) on C(pods/exec). Students have both in their own namespace on the ICC.
  - C(/metrics) needs no API key, even when TGI has one.
requirements:
  - prometheus_client (Python library, on the controller), for TGI's metrics
  - matplotlib (Python library, on the controller), for the plot
"""

EXAMPLES = r"""
- name: Sample GPUs and TGI every 5 seconds for a minute
  haw.icc.gpu_monitor:
    namespace: wabc123-default
    interval: 5
    samples: 12
    directory: monitor

- name: Take the GPU figures from a local command (a test, or no exec allowed)
  haw.icc.gpu_monitor:
    namespace: wabc123-default
    samples: 3
    interval: 1
    gpu_command: ./recorded-nvidia-smi.sh
"""

RETURN = r"""
csv:
  description: Path of the CSV file written.
  returned: unless in check mode
  type: str
  sample: /home/s/monitor/wabc123-default-20260302T101500Z.csv
png:
  description: Path of the plot written; null when no plot was drawn.
  returned: unless in check mode
  type: str
  sample: /home/s/monitor/wabc123-default-20260302T101500Z.png
columns:
  description: The columns of the CSV file, in order.
  returned: unless in check mode
  type: list
  elements: str
  sample: [time, seconds, gpu, gpu_name, utilization_percent, memory_used_gib]
samples:
  description: How many samples were taken.
  returned: unless in check mode
  type: int
  sample: 12
gpus:
  description: GPUs seen in the last sample that had GPU figures (0 when there were none).
  returned: unless in check mode
  type: int
  sample: 1
gpu_source:
  description: >-
    Where the GPU figures came from, C(exec into pod <name>) or C(command <argv>), or why there
    were none.
  returned: unless in check mode
  type: str
  sample: exec into pod tgi-6d5f8b7c9-x2lq
metrics_source:
  description: The API path TGI's metrics were read from.
  returned: unless in check mode
  type: str
  sample: /api/v1/namespaces/wabc123-default/services/tgi:http/proxy/metrics
problems:
  description: What could not be read, each once (GPU source, metrics).
  returned: always
  type: list
  elements: str
  sample: ["GPU figures: exec into pod tgi-6d5f8b7c9-x2lq failed (403 Forbidden); TGI metrics only"]
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    engine=dict(type="str", choices=["tgi", "vllm"], default="tgi"),
    name=dict(type="str", default="tgi"),
    container=dict(type="str", default="tgi"),
    service_port=dict(type="str", default="http"),
    interval=dict(type="int", default=5),
    samples=dict(type="int", default=12),
    directory=dict(type="path", default="."),
    gpu_command=dict(type="raw"),
    plot=dict(type="bool", default=True),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("gpu_monitor", ARGUMENT_SPEC)
