# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.wait_for_rollout: waits on the controller and shows progress.

It runs on the controller (not as a module) so that it can print a line while it waits: a
student watching a model download sees what the pod is doing instead of a silent spinner. The
logic that turns API objects into those lines lives in module_utils/pod_progress.py; this file
only builds the client, polls, prints and shapes the result.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.pod_progress import (
    ProgressLog,
    RolloutProgress,
    describe_rollout,
    format_duration,
)

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
except ImportError as error:  # reported as a task failure, not at import
    K8S_IMPORT_ERROR: ImportError | None = error
else:
    K8S_IMPORT_ERROR = None

display = Display()

HEARTBEAT_SECONDS = 60.0
REQUEST_TIMEOUT = (10, 30)  # connect, read (seconds) for every API call
ERROR_TOLERANCE_SECONDS = 60.0  # how long API errors may last once the first poll worked
DEFAULT_KUBECONFIG = "~/.kube/config"

# The options of kubernetes.core's doc fragment k8s_auth_options, with the same names and
# aliases; like kubernetes.core, each falls back to an environment variable K8S_AUTH_<NAME>.
AUTH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "raw", "no_log": True},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
    "proxy": {"type": "str"},
    "no_proxy": {"type": "str"},
    "proxy_headers": {
        "type": "dict",
        "options": {
            "proxy_basic_auth": {"type": "str", "no_log": True},
            "basic_auth": {"type": "str", "no_log": True},
            "user_agent": {"type": "str"},
        },
    },
    "persist_config": {"type": "bool"},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
}
# Environment variables kubernetes.core reads besides K8S_AUTH_<OPTION>.
AUTH_ENV_ALIASES = {
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
    "client_cert": "K8S_AUTH_CERT_FILE",
    "client_key": "K8S_AUTH_KEY_FILE",
}

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "namespace": {"type": "str", "required": True},
    "names": {"type": "list", "elements": "str", "required": True, "aliases": ["name"]},
    "timeout": {"type": "int", "default": 1800},
    "poll_interval": {"type": "int", "default": 5},
    "fail_fast": {"type": "bool", "default": True},
    "unschedulable_grace": {"type": "int", "default": 60},
    **AUTH_ARGUMENT_SPEC,
}


class SetupError(Exception):
    """Cannot build a client: no kubeconfig, a broken one, an unknown context."""


class ApiProblem(Exception):
    """An API call failed; `fatal` when waiting longer cannot help (404, 401, 403)."""

    def __init__(self, message: str, fatal: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


# --- the client ----------------------------------------------------------------------------------


def auth_from(args: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """The auth options given, else from K8S_AUTH_* variables, as kubernetes.core reads them."""
    auth = {}
    for name, spec in AUTH_ARGUMENT_SPEC.items():
        value = args.get(name)
        if value is None and name not in ("proxy_headers", "kubeconfig"):
            alias = AUTH_ENV_ALIASES.get(name, "")
            raw = environ.get("K8S_AUTH_" + name.upper()) or environ.get(alias)
            if raw is not None:
                if spec.get("type") == "bool":
                    value = raw.strip().lower() not in ("0", "false", "no", "off", "")
                elif spec.get("type") == "list":
                    value = [item for item in raw.split(",") if item]
                elif spec.get("type") == "path":
                    value = os.path.expanduser(raw)
                else:
                    value = raw
        if value is not None:
            auth[name] = value
    return auth


def kubeconfig_source(given: Any, environ: dict[str, str]) -> tuple[Any, str]:
    """(kubeconfig to load, where it came from): option, K8S_AUTH_KUBECONFIG, KUBECONFIG, home."""
    if given is not None:
        return given, "the kubeconfig option"
    for variable in ("K8S_AUTH_KUBECONFIG", "KUBECONFIG"):
        if environ.get(variable):
            return environ[variable], variable
    return DEFAULT_KUBECONFIG, "the default location"


def build_api_client(auth: dict[str, Any], environ: dict[str, str]) -> Any:
    """A kubernetes ApiClient from the auth options; SetupError with a readable reason."""
    configuration = k8s_client.Configuration()
    host, api_key = auth.get("host"), auth.get("api_key")
    direct = bool(
        host
        and (
            api_key
            or (auth.get("username") and auth.get("password"))
            or (auth.get("client_cert") and auth.get("client_key"))
        )
    )
    if (
        not direct
        or auth.get("kubeconfig") is not None
        or auth.get("context")
        or (environ.get("K8S_AUTH_KUBECONFIG"))
    ):
        _load_kubeconfig(configuration, auth, environ)
    if host:
        configuration.host = host.rstrip("/")
    if api_key:
        token = f"Bearer {api_key}"
        configuration.api_key = {"authorization": token, "BearerToken": token}
    for option, attribute in (
        ("validate_certs", "verify_ssl"),
        ("ca_cert", "ssl_ca_cert"),
        ("client_cert", "cert_file"),
        ("client_key", "key_file"),
        ("proxy", "proxy"),
        ("no_proxy", "no_proxy"),
    ):
        if auth.get(option) is not None:
            setattr(configuration, attribute, auth[option])
    headers = {k: v for k, v in (auth.get("proxy_headers") or {}).items() if v is not None}
    if headers:
        configuration.proxy_headers = urllib3.util.make_headers(**headers)
    configuration.retries = 1  # the wait loop retries; an unreachable API fails quickly
    if not configuration.verify_ssl:
        # Asked for (validate_certs: false, or insecure-skip-tls-verify in the kubeconfig): one
        # urllib3 warning per request would bury the progress lines (kubernetes.core does this too).
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    api = k8s_client.ApiClient(configuration)
    if auth.get("username") and auth.get("password") and not api_key:
        basic = urllib3.util.make_headers(basic_auth=f"{auth['username']}:{auth['password']}")
        api.set_default_header("Authorization", basic["authorization"])
    if auth.get("impersonate_user"):
        api.set_default_header("Impersonate-User", auth["impersonate_user"])
    groups = auth.get("impersonate_groups") or []
    if len(groups) > 1:
        # The API server wants one header line per group; the client can send only one.
        raise SetupError("impersonate_groups: wait_for_rollout can impersonate one group only")
    if groups:
        api.set_default_header("Impersonate-Group", groups[0])
    return api


def _load_kubeconfig(configuration: Any, auth: dict[str, Any], environ: dict[str, str]) -> None:
    source, origin = kubeconfig_source(auth.get("kubeconfig"), environ)
    context = auth.get("context")
    persist = bool(auth.get("persist_config"))
    if isinstance(source, dict):
        try:
            k8s_config.load_kube_config_from_dict(
                config_dict=source,
                context=context,
                client_configuration=configuration,
                persist_config=persist,
            )
        except Exception as error:  # the library raises many kinds; all mean a bad config
            raise SetupError(f"cannot use the kubeconfig given as a dictionary: {error}") from error
        return
    paths = [os.path.expanduser(part) for part in str(source).split(os.pathsep) if part]
    existing = [path for path in paths if os.path.isfile(path)]
    if not existing:
        if origin == "the default location" and environ.get("KUBERNETES_SERVICE_HOST"):
            try:  # running inside a pod (AWX, a CI job): its service account
                k8s_config.load_incluster_config(client_configuration=configuration)
                return
            except k8s_config.ConfigException as error:
                raise SetupError(f"no kubeconfig and no in-cluster config: {error}") from error
        hint = "set the kubeconfig option (or K8S_AUTH_KUBECONFIG / KUBECONFIG) to your kubeconfig"
        raise SetupError(f"kubeconfig {source} (from {origin}) does not exist; {hint}")
    try:
        k8s_config.load_kube_config(
            config_file=os.pathsep.join(existing),
            context=context,
            client_configuration=configuration,
            persist_config=persist,
        )
    except Exception as error:  # ConfigException, YAML errors, missing keys, bad base64
        what = f"context {context!r} of " if context else ""
        raise SetupError(f"cannot use {what}kubeconfig {source}: {error}") from error


# --- polling -------------------------------------------------------------------------------------


def label_selector(selector: dict[str, Any]) -> str:
    """A Deployment's spec.selector as the label selector string of a list call."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _api_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        message = None
    return message or f"{getattr(error, 'status', '')} {getattr(error, 'reason', '')}".strip()


class RolloutWatcher:
    """Reads what describe_rollout needs, one round per poll."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.apps = k8s_client.AppsV1Api(api)
        self.core = k8s_client.CoreV1Api(api)
        self.skew = timedelta(0)  # the API server's clock minus ours
        self.warnings: list[str] = []
        self._denied: set[str] = set()

    @property
    def server(self) -> str:
        return self.api.configuration.host

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.skew  # noqa: UP017

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except k8s_client.ApiException as error:
            if error.status == 401:
                raise ApiProblem(
                    f"the API server at {self.server} rejected the credentials (401 "
                    "Unauthorized): the token is wrong or has expired; download a new "
                    "kubeconfig",
                    fatal=True,
                ) from error
            if error.status in (403, 404):
                raise ApiProblem(_api_message(error), True, error.status) from error
            raise ApiProblem(f"{what}: {_api_message(error)}", False, error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise ApiProblem(
                f"cannot reach the Kubernetes API at {self.server}: {reason}", fatal=False
            ) from error
        self._note_clock(response)
        return json.loads(response.data or b"{}")

    def _note_clock(self, response: Any) -> None:
        date = (getattr(response, "headers", None) or {}).get("Date")
        if not date:
            return
        try:
            server_time = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        self.skew = server_time - datetime.now(timezone.utc)  # noqa: UP017

    def _optional_list(self, what: str, method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """A list call that may be forbidden under namespace RBAC: then nothing, with a warning."""
        try:
            return self._call(what, method, self.namespace, **kwargs).get("items") or []
        except ApiProblem as problem:
            if problem.status != 403:
                raise
            if what not in self._denied:
                self._denied.add(what)
                self.warnings.append(
                    f"cannot list {what} in namespace {self.namespace} ({problem}); progress "
                    "lines show less detail"
                )
            return []

    def events(self) -> list[dict[str, Any]]:
        return self._optional_list(
            "events",
            self.core.list_namespaced_event,
            field_selector="involvedObject.kind=Pod,type=Warning",
        )

    def deployment(self, name: str) -> dict[str, Any]:
        try:
            return self._call(
                f"Deployment {name}", self.apps.read_namespaced_deployment, name, self.namespace
            )
        except ApiProblem as problem:
            if problem.status == 404:
                message = f"Deployment {name} not found in namespace {self.namespace}"
            elif problem.status == 403:
                message = f"cannot read Deployment {name} in namespace {self.namespace}: {problem}"
            else:
                raise
            raise ApiProblem(message, True, problem.status) from problem

    def rollout(
        self, deployment: dict[str, Any], events: list[dict[str, Any]], grace: float
    ) -> RolloutProgress:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        replicasets = self._optional_list(
            "replicasets", self.apps.list_namespaced_replica_set, label_selector=selector
        )
        pods = self._optional_list("pods", self.core.list_namespaced_pod, label_selector=selector)
        return describe_rollout(deployment, replicasets, pods, events, self.now(), grace)


# --- the action ----------------------------------------------------------------------------------


def _report(progress: RolloutProgress) -> dict[str, Any]:
    report = {
        "ready": progress.done,
        "summary": progress.summary,
        "replicas": progress.desired,
        "ready_replicas": progress.ready,
        "revision": progress.revision,
        "failed": progress.failed,
        "reason": progress.reason,
        "pod": progress.pod,
    }
    if progress.detail:
        report["detail"] = progress.detail
    return report


def failure_message(progress: RolloutProgress, namespace: str) -> str:
    message = f"Deployment {progress.name} in namespace {namespace} cannot become ready: "
    message += progress.reason
    if progress.detail and progress.detail.strip() not in progress.reason:
        message += "\n\nLast output of the container:\n" + progress.detail
    return message


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        names = list(dict.fromkeys(args["names"]))
        namespace = args["namespace"]
        listed = ", ".join(names)
        result["changed"] = False
        if not names:
            return self._fail(result, "names must list at least one Deployment")
        if args["poll_interval"] < 1 or args["timeout"] < 0 or args["unschedulable_grace"] < 0:
            return self._fail(
                result, "poll_interval must be >= 1, timeout and unschedulable_grace >= 0"
            )
        if self._task.check_mode:
            result["skipped"] = True
            result["msg"] = (
                f"check mode: not waiting for Deployment(s) {listed} in namespace {namespace} "
                "(in check mode they may not exist yet)"
            )
            return result
        if K8S_IMPORT_ERROR is not None:
            return self._fail(
                result,
                "the kubernetes Python library is needed on the Ansible controller "
                f"(pip install kubernetes): {K8S_IMPORT_ERROR}",
            )
        environ = dict(os.environ)
        given = {key: value for key, value in args.items() if key in AUTH_ARGUMENT_SPEC}
        auth = auth_from(given, environ)
        try:
            api = build_api_client(auth, environ)
        except SetupError as error:
            return self._fail(result, f"cannot connect to Kubernetes: {error}")
        host = to_text(task_vars.get("inventory_hostname") or "")
        try:
            return self._wait(result, api, namespace, names, args, host)
        finally:
            api.close()

    @staticmethod
    def _fail(result: dict[str, Any], message: str) -> dict[str, Any]:
        result["failed"] = True
        result["msg"] = message
        return result

    def _wait(
        self,
        result: dict[str, Any],
        api: Any,
        namespace: str,
        names: list[str],
        args: dict[str, Any],
        host: str,
    ) -> dict[str, Any]:
        watcher = RolloutWatcher(api, namespace)
        log = ProgressLog(prefix=f"[{host}] " if host else "", heartbeat=HEARTBEAT_SECONDS)
        grace = float(args["unschedulable_grace"])
        began = time.monotonic()
        deadline = began + args["timeout"]
        last_success: float | None = None
        last_problem = ""
        rollouts: dict[str, RolloutProgress] = {}
        while True:
            round_began = time.monotonic()
            try:
                # Deployments first: a missing or forbidden one ends the wait before anything else.
                deployments = [watcher.deployment(name) for name in names]
                events = watcher.events()
                for name, deployment in zip(names, deployments, strict=True):
                    rollouts[name] = watcher.rollout(deployment, events, grace)
                last_success, last_problem = time.monotonic(), ""
            except ApiProblem as problem:
                since = began if last_success is None else last_success
                if (
                    problem.fatal
                    or last_success is None
                    or (time.monotonic() - since >= ERROR_TOLERANCE_SECONDS)
                ):
                    return self._finish(result, rollouts, began, watcher, str(problem))
                if str(problem) != last_problem:
                    display.warning(f"{host}: {problem}; retrying")
                    last_problem = str(problem)
            elapsed = time.monotonic() - began
            current = [rollouts[name] for name in names if name in rollouts]
            for line in log.lines(current, elapsed):
                display.display(line)
            if len(current) == len(names) and all(r.done for r in current):
                return self._finish(result, rollouts, began, watcher, None)
            failing = [r for r in current if r.failed and not r.done]
            if failing and args["fail_fast"]:
                message = "\n\n".join(failure_message(r, namespace) for r in failing)
                return self._finish(result, rollouts, began, watcher, message)
            now = time.monotonic()
            if now >= deadline:
                pending = [r for r in current if not r.done]
                lines = "\n".join(
                    r.summary + (f" (would not heal: {r.reason})" if r.failed else "")
                    for r in pending
                )
                message = (
                    f"timed out after {format_duration(args['timeout'])} waiting for "
                    f"Deployment(s) {', '.join(names)} in namespace {namespace}:\n{lines}"
                )
                if failing:
                    message += "\n\n" + "\n\n".join(failure_message(r, namespace) for r in failing)
                return self._finish(result, rollouts, began, watcher, message)
            pause = max(0.0, round_began + args["poll_interval"] - now)
            time.sleep(min(pause, max(0.0, deadline - now)))

    @staticmethod
    def _finish(
        result: dict[str, Any],
        rollouts: dict[str, RolloutProgress],
        began: float,
        watcher: RolloutWatcher,
        failure: str | None,
    ) -> dict[str, Any]:
        result["elapsed"] = round(time.monotonic() - began, 1)
        result["deployments"] = {name: _report(r) for name, r in rollouts.items()}
        if watcher.warnings:
            result["warnings"] = list(watcher.warnings)
        if failure is not None:
            result["failed"] = True
            result["msg"] = failure
        else:
            ready = ", ".join(r.summary for r in rollouts.values())
            result["msg"] = f"ready after {format_duration(result['elapsed'])}: {ready}"
        return result
