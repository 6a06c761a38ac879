# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.tgi_api_test: the API smoke test of one namespace.

It runs on the controller, where the user's kubeconfig is: requests to TGI and Open WebUI go
through a port-forward to the Ready pod that the kubernetes client opens itself
(pods/portforward, a WebSocket through the API server to the node's kubelet; HTTP over its
socket, key included), through the API server's service proxy (which drops the key), both
through ClusterApi over the client from kubernetes.core (auth and TLS are the user's), or
straight to a URL the user gives (an Ingress, a forward of their own). What each
reply means is decided in module_utils/operations/api_checks.py; this file sends the requests, runs
nvidia-smi through exec, prints the block and shapes the result.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import secrets
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import (
    ApiError,
    ClusterApi,
    resource_path,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.rights import may
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations.api_checks import (
    ENGINE_APIS,
    GPU,
    ApiTest,
    Check,
    Reply,
    Transport,
    Unreachable,
    failed,
    report,
    run_api_checks,
    skipped,
    summary,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.api_route import (
    forward_refused,
    join_url,
    target_port,
    url_problem,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.gpu_check import (
    check_gpus,
    gpu_query_command,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()
EXEC_SECONDS = 60


def _bytes(data: Any) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else str(data).encode()


def proxy_transport(
    api: ClusterApi, namespace: str, service: str, port: int, timeout: int
) -> Transport:
    """Requests through the API server's service proxy, with the user's credentials.

    An API key is never sent: the API server would remove the Authorization header anyway.
    """

    def send(method: str, path: str, body: dict | None, _key: str | None) -> Reply:
        started = time.monotonic()
        try:
            answer = api.proxy(method, namespace, service, port, path, body, timeout)
        except ApiError as error:
            return Reply(error.status, _bytes(error.body), time.monotonic() - started, error.said)
        return Reply(answer.status, answer.data, time.monotonic() - started)

    return send


def direct_transport(base: str, timeout: int, validate_certs: bool) -> Transport:
    """Requests straight to a base URL (an Ingress, a port-forward), the key as TGI reads it."""
    context = None
    if base.startswith("https://") and not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def send(method: str, path: str, body: dict | None, key: str | None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(join_url(base, path), data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        started = time.monotonic()
        try:
            with opener.open(request, timeout=timeout) as response:
                return Reply(response.status, response.read(), time.monotonic() - started)
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), time.monotonic() - started)
        except urllib.error.URLError as error:
            return Reply(None, b"", time.monotonic() - started, error=str(error.reason))
        except OSError as error:  # a timeout while reading, a reset connection
            return Reply(None, b"", time.monotonic() - started, error=str(error))

    return send


def port_forward_transport(
    api: ClusterApi, namespace: str, pod: str, port: int, timeout: int, variable: str
) -> Transport:
    """Requests over a port-forward to `pod`'s `port` that the kubernetes client opens itself,
    one forward per request (a real kubelet ends a forward when its connection ends), with the
    key as TGI reads it. Raises Unreachable when the forward does not open or its error channel
    says why the pod's port cannot be reached; `variable` is named in that message."""

    def send(method: str, path: str, body: dict | None, key: str | None) -> Reply:
        try:
            forward = api.port_forward(namespace, pod, port)
        except ApiError as error:
            raise Unreachable(forward_refused(pod, error.status, error.said, variable)) from None
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = None if body is None else json.dumps(body).encode()
        connection = http.client.HTTPConnection("localhost", port, timeout=timeout)
        started = time.monotonic()
        try:
            sock = forward.socket(port)
            sock.settimeout(timeout)
            connection.sock = sock
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.read(), time.monotonic() - started)
        except (OSError, http.client.HTTPException) as error:
            said = forward.error(port)
            if said:  # the kubelet's (the runtime's) reason, on the port's error channel
                raise Unreachable(
                    f"the port-forward to pod {pod} port {port} failed: {said}"
                ) from None
            return Reply(None, b"", time.monotonic() - started, error=str(error) or repr(error))
        finally:
            connection.close()
            forward.close()

    return send


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        problems = [
            problem
            for name in ("tgi_url", "open_webui_url")
            if args[name]
            for problem in [url_problem(name, args[name])]
            if problem
        ]
        if args["max_tokens"] < 1:
            problems.append(f"max_tokens must be at least 1, not {args['max_tokens']}")
        if args["request_timeout"] < 1:
            problems.append(f"request_timeout must be at least 1, not {args['request_timeout']}")
        if problems:
            return self._fail(result, "\n".join(problems))
        api = self._cluster_api(args)
        namespace = args["namespace"]
        tgi_pod = self._ready_pod(api, namespace, args["tgi_service"])
        via, tgi = self._transport(api, args, "tgi", tgi_pod)
        webui = None
        if args["open_webui"]:
            webui = self._transport(api, args, "open_webui", None)[1]
        carries_key = bool(args["tgi_url"]) or args["tgi_access"] == "port-forward"
        key, source = self._api_key(api, args, carries_key)
        test = ApiTest(
            model_id=args["model_id"],
            api_key=key,
            key_source=source,
            wrong_key="wrong-" + secrets.token_hex(12),
            carries_key=carries_key,
            prompt=args["prompt"],
            max_tokens=args["max_tokens"],
            engine=ENGINE_APIS[args["engine"]],
        )
        checks = run_api_checks(tgi, test, webui)
        server = args["server_service"] or args["tgi_service"]
        server_pod = (
            tgi_pod if server == args["tgi_service"] else self._ready_pod(api, namespace, server)
        )
        checks.append(self._gpu_check(api, args, server_pod))

        host = to_text(task_vars.get("inventory_hostname") or namespace)
        display.display(report(f"[{host}] API test of {namespace} through {via}", checks))
        result["checks"] = [check.as_dict() for check in checks]
        result["via"] = via
        result["msg"] = summary(checks)
        if any(not check.ok for check in checks):
            result["failed"] = True
        return result

    # --- the ways to TGI and Open WebUI -------------------------------------------------------

    @staticmethod
    def _ready_pod(api: ClusterApi, namespace: str, service: str) -> tuple[dict, dict] | str:
        """(the Service, its newest Ready pod), or why there is none."""
        try:
            found = api.get(resource_path("v1", "services", namespace, service))
            selector = (found.get("spec") or {}).get("selector") or {}
            pods = api.list(
                resource_path("v1", "pods", namespace),
                {"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())},
            )
        except ApiError as error:
            return f"cannot find the pod behind Service {service}: {error}"
        ready = [
            pod
            for pod in pods
            if selector
            and not pod["metadata"].get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
        ]
        if not ready:
            return f"no Ready pod behind Service {service} (status.yml says why)"
        # RFC 3339 times in UTC, as the API server writes them, sort as text.
        newest = max(
            ready,
            key=lambda pod: (
                pod["metadata"].get("creationTimestamp") or "",
                pod["metadata"]["name"],
            ),
        )
        return found, newest

    def _transport(
        self,
        api: ClusterApi,
        args: dict[str, Any],
        app: str,
        found: tuple[dict, dict] | str | None,
    ) -> tuple[str, Transport]:
        """(how, the transport) to `app` ("tgi" or "open_webui") as the options say; `found`:
        _ready_pod's answer for its Service when known."""
        namespace, timeout = args["namespace"], args["request_timeout"]
        url, service, port = args[f"{app}_url"], args[f"{app}_service"], args[f"{app}_service_port"]
        if url:
            return f"{url} (direct)", direct_transport(url, timeout, args["url_validate_certs"])
        if args[f"{app}_access"] == "proxy":
            via = f"the API server's service proxy (services/{service}:{port})"
            return via, proxy_transport(api, namespace, service, port, timeout)
        if found is None:
            found = self._ready_pod(api, namespace, service)
        try:
            if isinstance(found, str):
                raise ValueError(found)
            pod = found[1]
            pod_port = target_port(found[0], port, pod)
        except ValueError as error:
            return "a port-forward (none opened)", _unreachable(f"no port-forward: {error}")
        name = pod["metadata"]["name"]
        variable = "icc_test_tgi_url" if app == "tgi" else "icc_test_open_webui_url"
        via = f"a port-forward to pod {name} (port {pod_port})"
        return via, port_forward_transport(api, namespace, name, pod_port, timeout, variable)

    # --- the key ----------------------------------------------------------------------------

    @staticmethod
    def _api_key(
        api: ClusterApi, args: dict[str, Any], carries_key: bool
    ) -> tuple[str | None, str]:
        """(the key, where it comes from): the option, else the namespace's Secret."""
        if args["tgi_api_key"]:
            return args["tgi_api_key"], "tgi_api_key"
        secret = args["tgi_api_key_secret"]
        if not carries_key:  # not needed: the proxy could not carry it
            return None, f"Secret {secret}"
        try:
            data = api.get(resource_path("v1", "secrets", args["namespace"], secret)).get("data")
            return base64.b64decode((data or {})["api-key"]).decode(), f"Secret {secret}"
        except ApiError as error:
            return None, f"Secret {secret} (unreadable: {error})"
        except (KeyError, binascii.Error, UnicodeDecodeError):
            return None, f"Secret {secret} (it has no valid api-key)"

    # --- the GPU test -----------------------------------------------------------------------

    def _gpu_check(
        self, api: ClusterApi, args: dict[str, Any], found: tuple[dict, dict] | str
    ) -> Check:
        """nvidia-smi and env in the TGI pod `found` (_ready_pod's answer)."""
        if not args["gpu_test"]:
            return skipped(GPU, "turned off (gpu_test: false)")
        if isinstance(found, str):
            return failed(GPU, found)
        namespace, pod = args["namespace"], found[1]
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        gpus = container_gpus(container)
        if gpus == 0:
            return skipped(GPU, f"pod {name} has no GPU (tgi_gpu_count 0)")
        if not self._may_exec(api, namespace):
            return skipped(
                GPU, "you may not exec into pods in this namespace (RBAC: create on pods/exec)"
            )
        started = time.monotonic()
        try:
            smi = self._exec(api, name, namespace, container["name"], gpu_query_command())
            env = self._exec(api, name, namespace, container["name"], ["env"])
        except ApiError as error:
            return exec_unavailable(name, error)
        return check_gpus(gpus, smi, env, time.monotonic() - started)

    @staticmethod
    def _may_exec(api: ClusterApi, namespace: str) -> bool:
        try:
            return may(api, namespace, "", "pods/exec", "create")
        except ApiError:  # cannot ask: let the exec itself tell
            return True

    @staticmethod
    def _exec(
        api: ClusterApi, pod: str, namespace: str, container: str, command: list[str]
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `command` in the container, through the API server;
        -1 when it did not run, and stderr ends with why."""
        done = api.exec(namespace, pod, command, container, EXEC_SECONDS)
        why = "" if done.code >= 0 else (done.failure or "")
        return done.code, done.stdout, done.stderr + why


def _unreachable(why: str) -> Transport:
    """A transport for a way that could not be set up: every request says why."""

    def send(_method: str, _path: str, _body: dict | None, _key: str | None) -> Reply:
        raise Unreachable(why)

    return send


def exec_unavailable(pod: str, error: ApiError) -> Check:
    """The GPU test skipped because exec did not start, with the API server's reason."""
    status, message = error.status, error.said
    if status == 403:
        return skipped(GPU, f"exec into pod {pod} is forbidden: {message}")
    return skipped(
        GPU, f"exec into pod {pod} is not served here (the node does not answer it): {message}"
    )
