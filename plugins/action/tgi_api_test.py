# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.tgi_api_test: the API smoke test of one namespace.

It runs on the controller, where the user's kubeconfig is: requests to TGI and Open WebUI go
through a port-forward to the Ready pod that the kubernetes client opens itself
(kubernetes.stream.portforward: pods/portforward, a WebSocket through the API server to the
node's kubelet; HTTP over its socket, key included), through the API server's service proxy
(which drops the key), both with the client from kubernetes.core (auth and TLS are the
user's), or straight to a URL the user gives (an Ingress, a forward of their own). What each
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
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import api_message
from ansible_collections.haw.icc.plugins.module_utils.operations.api_checks import (
    GPU,
    ApiTest,
    Check,
    Reply,
    Transport,
    Unreachable,
    check_gpus,
    exec_refusal,
    failed,
    forward_refused,
    gpu_query_command,
    join_url,
    report,
    run_api_checks,
    service_proxy_path,
    skipped,
    summary,
    target_port,
    url_problem,
)
from ansible_collections.haw.icc.plugins.modules.tgi_api_test import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    ConnectionProblem,
    KubernetesAction,
)

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import portforward, stream
    from urllib3.exceptions import HTTPError
except ImportError:  # reported by KubernetesAction._api_client
    ApiException = HTTPError = OSError

display = Display()
EXEC_SECONDS = 60


def _bytes(data: Any) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else str(data).encode()


def _api_request(
    api: Any, method: str, resource: str, body: dict | None, timeout: int
) -> tuple[int, Any]:
    """(status, body) of a request to a path of the API server, with the client's credentials,
    whatever the status, with the newer generated client (param_serialize) or the older one."""
    headers = {"Content-Type": "application/json", "Accept": "*/*"}
    if hasattr(api, "param_serialize"):
        method, url, headers, data, form = api.param_serialize(
            method, resource, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = api.call_api(
            method,
            url,
            header_params=headers,
            body=data,
            post_params=form,
            _request_timeout=timeout,
        )
        response.read()
        return response.status, response.data
    response = api.call_api(
        resource,
        method,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=timeout,
    )
    return response.status, response.data


def proxy_transport(api: Any, namespace: str, service: str, port: int, timeout: int) -> Transport:
    """Requests through the API server's service proxy, with the user's credentials.

    An API key is never sent: the API server would remove the Authorization header anyway.
    """

    def send(method: str, path: str, body: dict | None, _key: str | None) -> Reply:
        started = time.monotonic()
        resource = service_proxy_path(namespace, service, port, path)
        try:
            status, data = _api_request(api, method, resource, body, timeout)
            return Reply(status, _bytes(data), time.monotonic() - started)
        except ApiException as error:
            return Reply(
                error.status or None,
                _bytes(error.body),
                time.monotonic() - started,
                error=str(error.reason),
            )
        except (HTTPError, OSError) as error:
            return Reply(None, b"", time.monotonic() - started, error=str(error))

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
    core: Any, namespace: str, pod: str, port: int, timeout: int, variable: str
) -> Transport:
    """Requests over a port-forward to `pod`'s `port` that the kubernetes client opens itself,
    one forward per request (a real kubelet ends a forward when its connection ends), with the
    key as TGI reads it. Raises Unreachable when the forward does not open or its error channel
    says why the pod's port cannot be reached; `variable` is named in that message."""

    def send(method: str, path: str, body: dict | None, key: str | None) -> Reply:
        try:
            forward = portforward(
                core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
            )
        except (ApiException, HTTPError, OSError) as error:
            status, message = exec_refusal(error)
            raise Unreachable(forward_refused(pod, status, message, variable)) from None
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
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
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
        try:
            api = self._api_client(args)
        except ConnectionProblem as error:
            return self._fail(result, f"Cannot connect: {error}")
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
        )
        checks = run_api_checks(tgi, test, webui)
        checks.append(self._gpu_check(api, args, tgi_pod))

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
    def _ready_pod(api: Any, namespace: str, service: str) -> tuple[Any, Any] | str:
        """(the Service, its newest Ready pod), or why there is none."""
        core = k8s.CoreV1Api(api)
        try:
            found = core.read_namespaced_service(service, namespace)
            selector = found.spec.selector or {}
            pods = core.list_namespaced_pod(
                namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())
            ).items
        except ApiException as error:
            return f"cannot find the pod behind Service {service}: {api_message(error)}"
        ready = [
            pod
            for pod in pods
            if selector
            and pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ]
        if not ready:
            return f"no Ready pod behind Service {service} (status.yml says why)"
        return found, max(
            ready, key=lambda pod: (pod.metadata.creation_timestamp, pod.metadata.name)
        )

    def _transport(
        self, api: Any, args: dict[str, Any], app: str, found: tuple[Any, Any] | str | None
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
            serialize = api.sanitize_for_serialization
            pod_port = target_port(serialize(found[0]), port, serialize(pod))
        except ValueError as error:
            return "a port-forward (none opened)", _unreachable(f"no port-forward: {error}")
        name = pod.metadata.name
        variable = "icc_test_tgi_url" if app == "tgi" else "icc_test_open_webui_url"
        core = k8s.CoreV1Api(api)
        via = f"a port-forward to pod {name} (port {pod_port})"
        return via, port_forward_transport(core, namespace, name, pod_port, timeout, variable)

    # --- the key ----------------------------------------------------------------------------

    @staticmethod
    def _api_key(api: Any, args: dict[str, Any], carries_key: bool) -> tuple[str | None, str]:
        """(the key, where it comes from): the option, else the namespace's Secret."""
        if args["tgi_api_key"]:
            return args["tgi_api_key"], "tgi_api_key"
        secret = args["tgi_api_key_secret"]
        if not carries_key:  # not needed: the proxy could not carry it
            return None, f"Secret {secret}"
        try:
            data = k8s.CoreV1Api(api).read_namespaced_secret(secret, args["namespace"]).data
            return base64.b64decode((data or {})["api-key"]).decode(), f"Secret {secret}"
        except ApiException as error:
            return None, f"Secret {secret} (unreadable: {api_message(error)})"
        except (KeyError, binascii.Error, UnicodeDecodeError):
            return None, f"Secret {secret} (it has no valid api-key)"

    # --- the GPU test -----------------------------------------------------------------------

    def _gpu_check(self, api: Any, args: dict[str, Any], found: tuple[Any, Any] | str) -> Check:
        """nvidia-smi and env in the TGI pod `found` (_ready_pod's answer)."""
        if not args["gpu_test"]:
            return skipped(GPU, "turned off (gpu_test: false)")
        if isinstance(found, str):
            return failed(GPU, found)
        namespace, pod = args["namespace"], found[1]
        core = k8s.CoreV1Api(api)
        container = pod.spec.containers[0]
        limits = (container.resources and container.resources.limits) or {}
        gpus = int(limits.get("nvidia.com/gpu", 0) or 0)
        if gpus == 0:
            return skipped(GPU, f"pod {pod.metadata.name} has no GPU (tgi_gpu_count 0)")
        if not self._may_exec(api, namespace):
            return skipped(
                GPU, "you may not exec into pods in this namespace (RBAC: create on pods/exec)"
            )
        started = time.monotonic()
        try:
            smi = self._exec(
                core, pod.metadata.name, namespace, container.name, gpu_query_command()
            )
            env = self._exec(core, pod.metadata.name, namespace, container.name, ["env"])
        except (ApiException, HTTPError, OSError) as error:
            return exec_unavailable(pod.metadata.name, error)
        return check_gpus(gpus, smi, env, time.monotonic() - started)

    @staticmethod
    def _may_exec(api: Any, namespace: str) -> bool:
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    namespace=namespace, verb="create", resource="pods", subresource="exec"
                )
            )
        )
        try:
            return bool(
                k8s.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed
            )
        except ApiException:  # cannot ask: let the exec itself tell
            return True

    @staticmethod
    def _exec(
        core: Any, pod: str, namespace: str, container: str, command: list[str]
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `command` in the container, through the API server."""
        response = stream(
            core.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            container=container,
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        out, err = [], []
        deadline = time.monotonic() + EXEC_SECONDS
        while response.is_open() and time.monotonic() < deadline:
            response.update(timeout=1)
            if response.peek_stdout():
                out.append(response.read_stdout())
            if response.peek_stderr():
                err.append(response.read_stderr())
        code, message = _exit_status(response.read_channel(3))
        response.close()
        return code, "".join(out), "".join(err) + message


def _unreachable(why: str) -> Transport:
    """A transport for a way that could not be set up: every request says why."""

    def send(_method: str, _path: str, _body: dict | None, _key: str | None) -> Reply:
        raise Unreachable(why)

    return send


def exec_unavailable(pod: str, error: Exception) -> Check:
    """The GPU test skipped because exec did not start, with the API server's reason."""
    status, message = exec_refusal(error)
    if status == 403:
        return skipped(GPU, f"exec into pod {pod} is forbidden: {message}")
    return skipped(
        GPU, f"exec into pod {pod} is not served here (the node does not answer it): {message}"
    )


def _exit_status(status: str) -> tuple[int, str]:
    """(exit code, message) from exec's status channel (a metav1.Status as JSON); -1 when the
    command did not run (its message says why, for example an executable not found)."""
    try:
        answer = json.loads(status or "{}")
    except ValueError:
        return -1, status
    if answer.get("status") == "Success":
        return 0, ""
    for cause in (answer.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message")), ""
            except (TypeError, ValueError):
                break
    return -1, str(answer.get("message") or status)
