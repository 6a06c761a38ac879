#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.tgi_api_test; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tgi_api_test
short_description: Smoke-test a namespace's TGI API, Open WebUI and GPUs
version_added: 0.1.0
description:
  - Sends a handful of requests to the TGI server of one namespace and reports each as a check
    with C(ok), C(skipped), a detail and the seconds it took. One failing check does not stop
    the others; the task fails when any check failed, naming each one.
  - C(tgi health) GET C(/health) answers 200. C(tgi info) GET C(/info) names the model of
    O(model_id) (a mismatch names both). C(tgi models) GET C(/v1/models) lists it.
    C(chat with the key) one POST C(/v1/chat/completions) with the API key, reporting the
    latency and the tokens per second (C(usage.completion_tokens) over the request's time).
    C(no key refused) the same request without a key gets 401. C(wrong key refused) and with a
    wrong key too. C(open-webui health) GET C(/health) of Open WebUI answers 200.
    C(gpu) C(nvidia-smi) in the TGI container lists as many GPUs as the pod requests, with
    their name, memory and driver, and the container's C(CUDA_*), C(NCCL_*) and C(NVIDIA_*)
    variables.
  - TGI is reached through a port-forward to its newest Ready pod unless O(tgi_url) is given or
    O(tgi_access=proxy). The kubernetes client opens the port-forward itself (C(pods/portforward),
    a WebSocket through the API server to the node's kubelet; no kubectl), one per request, and
    the request goes over it as it is, API key included, so every check runs. The summary names
    the pod and its port. Without the right to port-forward the test fails with one line naming
    the right and the fallback.
  - Through the API server's service proxy (O(tgi_access=proxy)) nothing but the kubeconfig's
    access to C(services/proxy) is needed, but the proxy removes the C(Authorization) header,
    the only place TGI reads its key from; so through it the chat and the wrong key are skipped
    with that reason. O(tgi_url) (an Ingress, a forward of your own) runs every check too.
  - For a namespace that runs vLLM (O(engine=vllm)) the checks are named C(vllm health),
    C(vllm version) (GET C(/version) says the release; vLLM has no C(/info)) and C(vllm models),
    and the model list is asked with the key, since vLLM guards every path under C(/v1); through
    the service proxy it is skipped like the chat. The rest is the same.
  - The GPU test runs C(nvidia-smi) and C(env) through the API server's exec. Where exec is not
    allowed (no C(create) on C(pods/exec)) or the node does not serve it, the check is skipped
    with that reason; a pod without GPUs skips it too.
  - Prints one block per namespace with a line per check. Runs on the Ansible controller as an
    action plugin; it only reads (the chat request changes nothing either), so it runs in check
    mode as well.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
  engine:
    description:
      - The inference server of the namespace (the inventory's C(icc_engine)).
    type: str
    choices: [tgi, vllm]
    default: tgi
  model_id:
    description:
      - The model TGI must serve (the inventory's C(tgi_model_id)); C(/info) and C(/v1/models)
        must name exactly this.
    type: str
    required: true
  tgi_url:
    description:
      - Base URL of TGI's API for a direct request, for example an Ingress
        (V(https://llm.example.org)) or a C(kubectl port-forward) of your own
        (V(http://127.0.0.1:3333)).
      - Unset, O(tgi_access) says how TGI is reached.
    type: str
  tgi_access:
    description:
      - How TGI is reached when O(tgi_url) is not given.
      - V(port-forward) opens a port-forward per request to the newest Ready pod behind
        O(tgi_service), to the pod's port that the Service's port O(tgi_service_port) targets (a
        number, or the name of a container port), as C(kubectl port-forward svc/...) does.
        Needs C(get) and C(create) on C(pods/portforward) (the Python client's WebSocket is a GET;
        Kubernetes 1.30 and later also ask for C(create)).
      - V(proxy) goes through the API server's service proxy to O(tgi_service), which cannot
        carry the API key (see the description).
    type: str
    choices: [port-forward, proxy]
    default: port-forward
  tgi_service:
    description: The TGI Service, used for the service proxy and to find the TGI pod.
    type: str
    default: tgi
  server_service:
    description:
      - The Service of the inference server's own pods, where the GPU check runs; unset, that
        of O(tgi_service). Differs when an idle proxy (C(icc_idle_minutes)) stands behind
        O(tgi_service).
    type: str
  tgi_service_port:
    description: The TGI Service's port (a port-forward goes to the pod's port it targets).
    type: int
    default: 3333
  tgi_api_key:
    description:
      - TGI's API key. Unset, it is read from O(tgi_api_key_secret) in the namespace, unless
        TGI is reached through the proxy, which cannot carry it.
      - Not to be confused with O(api_key), the token for the Kubernetes API.
    type: str
  tgi_api_key_secret:
    description: The Secret holding TGI's API key under the key C(api-key).
    type: str
    default: tgi-api-key
  open_webui:
    description: Whether to check Open WebUI's C(/health).
    type: bool
    default: true
  open_webui_url:
    description:
      - Base URL of Open WebUI for a direct request; unset, O(open_webui_access) says how.
    type: str
  open_webui_access:
    description:
      - How Open WebUI is reached when O(open_webui_url) is not given, as O(tgi_access) says for
        TGI. V(port-forward) goes to the newest Ready pod behind O(open_webui_service), V(proxy)
        through the API server's service proxy (its C(/health) needs no key, so both test the
        same).
    type: str
    choices: [port-forward, proxy]
    default: port-forward
  open_webui_service:
    description: The Open WebUI Service.
    type: str
    default: open-webui
  open_webui_service_port:
    description: The Open WebUI Service's port.
    type: int
    default: 8080
  gpu_test:
    description: Whether to run the GPU test in the TGI pod.
    type: bool
    default: true
  prompt:
    description: The user message of the chat request.
    type: str
    default: Say hello in one short sentence.
  max_tokens:
    description: At most this many tokens are generated for the chat request (at least 1).
    type: int
    default: 32
  request_timeout:
    description: Seconds each request may take (at least 1).
    type: int
    default: 120
  url_validate_certs:
    description: Whether to verify the TLS certificate of O(tgi_url) and O(open_webui_url).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: It only reads; in check mode it runs the same requests.
notes:
  - The port-forwards are opened with the same client as every request to the API server;
    direct URLs are requested with the proxy settings of the controller's environment.
  - The rights it uses in the namespace are C(get) on Services and Secrets (the key), C(list)
    on pods, C(get) and C(create) on C(pods/portforward) (or, through the proxy, on
    C(services/proxy)), and C(create) on C(pods/exec) for the GPU test.
  - A port-forward goes from the node's kubelet to the pod's own port, so a NetworkPolicy never
    keeps it out; the service proxy comes from the API server, which a policy admitting only
    pods may keep out.
  - With the collection's NetworkPolicy on, an Ingress controller reaches TGI only when its
    namespace is in C(tgi_network_policy_extra_from).
seealso:
  - module: kubernetes.core.k8s_exec
  - module: kubernetes.core.k8s_service
"""

EXAMPLES = r"""
- name: Every check, through a port-forward the module opens to the TGI pod
  haw.icc.tgi_api_test:
    namespace: wabc123-default
    model_id: Qwen/Qwen2.5-1.5B-Instruct
  register: __api_test

- name: Through the API server's proxy (the keyed checks are skipped)
  haw.icc.tgi_api_test:
    namespace: wabc123-default
    model_id: Qwen/Qwen2.5-1.5B-Instruct
    tgi_access: proxy
    open_webui_access: proxy

- name: Every check, through kubectl -n wabc123-default port-forward svc/tgi 3333
  haw.icc.tgi_api_test:
    namespace: wabc123-default
    model_id: Qwen/Qwen2.5-1.5B-Instruct
    tgi_url: http://127.0.0.1:3333
    gpu_test: false

- name: Show the tokens per second
  ansible.builtin.debug:
    msg: "{{ (__api_test.checks | selectattr('name', 'eq', 'chat with the key') | first).detail }}"
"""

RETURN = r"""
checks:
  description: Every check, in the order they ran.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Which check.
      type: str
      sample: tgi info
    ok:
      description: Whether it passed (true for a skipped one).
      type: bool
      sample: true
    skipped:
      description: Whether it could not run here; RV(checks[].detail) says why.
      type: bool
      sample: false
    detail:
      description: What was seen, or why it failed or was skipped.
      type: str
      sample: "200 in 0.84s: 32 tokens, 38.1 tokens/s (key from Secret tgi-api-key)"
    seconds:
      description: How long its request took.
      type: float
      sample: 0.84
via:
  description: How TGI was reached.
  returned: always
  type: str
  sample: a port-forward to pod tgi-6d4f9c7b8-x2kqz (port 80)
msg:
  description: How many checks passed or were skipped, or which failed and why.
  returned: always
  type: str
  sample: "8 checks passed"
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    engine=dict(type="str", choices=["tgi", "vllm"], default="tgi"),
    model_id=dict(type="str", required=True),
    **action_docs.service_access_spec("tgi", service="tgi", port=3333),
    server_service=dict(type="str"),
    tgi_api_key=dict(type="str", no_log=True),
    tgi_api_key_secret=dict(type="str", default="tgi-api-key", no_log=False),
    open_webui=dict(type="bool", default=True),
    **action_docs.service_access_spec("open_webui", service="open-webui", port=8080),
    gpu_test=dict(type="bool", default=True),
    prompt=dict(type="str", default="Say hello in one short sentence."),
    max_tokens=dict(type="int", default=32, no_log=False),
    request_timeout=dict(type="int", default=120),
    url_validate_certs=dict(type="bool", default=True),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("tgi_api_test", ARGUMENT_SPEC)
