# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The Kubernetes client of the collection's action plugins, and their shared rollout wait.

`wait_for_rollout` and `tgi_model_switch` run on the controller (so that they can print progress
while they wait). Both build their client here from kubernetes.core's auth options, read and
patch Deployments through `RolloutWatcher`, and wait with `wait_for_rollouts`, which turns what
the pods do into lines through module_utils/pod_progress.py and hands them to a callback.

The kubernetes library is imported guarded: `K8S_IMPORT_ERROR` holds the error, and callers
report it as a task failure instead of failing at import.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, Optional  # noqa: UP035

from ansible_collections.haw.icc.plugins.module_utils.cluster_access import api_message
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
        raise SetupError("impersonate_groups: haw.icc's modules can impersonate one group only")
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


# --- reading and patching ------------------------------------------------------------------------


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


class RolloutWatcher:
    """Reads what describe_rollout needs, one round per poll, and patches Deployments."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.apps = k8s_client.AppsV1Api(api)
        self.core = k8s_client.CoreV1Api(api)
        self.skew = timedelta(0)  # the API server's clock minus ours
        self.warnings: list[str] = []
        self.replicasets: dict[str, str] = {}  # Deployment name -> its newest ReplicaSet seen
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
                raise ApiProblem(api_message(error), True, error.status) from error
            raise ApiProblem(f"{what}: {api_message(error)}", False, error.status) from error
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

    def patch_deployment(
        self, name: str, patch: list[dict[str, Any]], field_manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        """Sends a JSON patch (a list of operations); the Deployment as the server stored it.

        With `dry_run` the server runs every stage (admission, validation) but stores nothing.
        """
        options: dict[str, Any] = {"field_manager": field_manager}
        if dry_run:
            options["dry_run"] = "All"
        # A list body makes the client send application/json-patch+json (old and new clients).
        return self._call(
            f"patching Deployment {name}",
            self.apps.patch_namespaced_deployment,
            name,
            self.namespace,
            patch,
            **options,
        )

    def rollout(
        self, deployment: dict[str, Any], events: list[dict[str, Any]], grace: float
    ) -> RolloutProgress:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        replicasets = self._optional_list(
            "replicasets", self.apps.list_namespaced_replica_set, label_selector=selector
        )
        pods = self._optional_list("pods", self.core.list_namespaced_pod, label_selector=selector)
        progress = describe_rollout(deployment, replicasets, pods, events, self.now(), grace)
        if progress.replicaset:
            self.replicasets[progress.name] = progress.replicaset
        return progress


# --- waiting -------------------------------------------------------------------------------------

READY = "ready"
FAILED = "failed"  # a pod of the newest revision is in a state that will not heal
TIMED_OUT = "timed out"
UNOBSERVED = "unobserved"  # the API could not be read (gone, forbidden, unreachable too long)


@dataclass
class WaitOutcome:
    """How a wait ended: `status` is READY, FAILED, TIMED_OUT or UNOBSERVED."""

    status: str
    rollouts: Dict[str, RolloutProgress]  # noqa: UP006 - the last state seen, by name
    elapsed: float
    message: Optional[str] = None  # noqa: UP045 - why it failed, for the user
    failing: list = field(default_factory=list)  # the rollouts that will not heal

    @property
    def ready(self) -> bool:
        return self.status == READY


def rollout_report(progress: RolloutProgress) -> dict[str, Any]:
    """A rollout as the `deployments` entries of wait_for_rollout's result."""
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


def _at_least_generation(deployment: dict[str, Any], minimum: int | None) -> dict[str, Any]:
    """The Deployment as if at generation `minimum`, so an older read never counts as done."""
    meta = deployment.get("metadata") or {}
    if minimum is None or int(meta.get("generation") or 0) >= minimum:
        return deployment
    return dict(deployment, metadata=dict(meta, generation=minimum))


def wait_for_rollouts(
    watcher: Any,
    names: list[str],
    *,
    timeout: float,
    poll_interval: float,
    grace: float,
    show: Callable[[str], None],
    warn: Callable[[str], None],
    log: ProgressLog | None = None,
    fail_fast: bool = True,
    generations: dict[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Polls until every Deployment in `names` is rolled out, showing lines through `show`.

    `generations` holds, per Deployment, the generation a patch produced: the wait looks at
    that spec or a newer one. API errors are retried for ERROR_TOLERANCE_SECONDS once a first
    round worked (each new one reported through `warn`); 401/403/404 end the wait at once.
    """
    log = log or ProgressLog(heartbeat=HEARTBEAT_SECONDS)
    minimum = generations or {}
    began = clock()
    deadline = began + timeout
    last_success: float | None = None
    last_problem = ""
    rollouts: dict[str, RolloutProgress] = {}

    def finish(status: str, message: str | None, failing: list | None = None) -> WaitOutcome:
        elapsed = round(clock() - began, 1)
        return WaitOutcome(status, rollouts, elapsed, message, list(failing or []))

    while True:
        round_began = clock()
        try:
            # Deployments first: a missing or forbidden one ends the wait before anything else.
            deployments = [
                _at_least_generation(watcher.deployment(name), minimum.get(name)) for name in names
            ]
            events = watcher.events()
            for name, deployment in zip(names, deployments):  # noqa: B905 - Python 3.8
                rollouts[name] = watcher.rollout(deployment, events, grace)
            last_success, last_problem = clock(), ""
        except ApiProblem as problem:
            since = began if last_success is None else last_success
            if (
                problem.fatal
                or last_success is None
                or (clock() - since >= ERROR_TOLERANCE_SECONDS)
            ):
                return finish(UNOBSERVED, str(problem))
            if str(problem) != last_problem:
                warn(f"{problem}; retrying")
                last_problem = str(problem)
        elapsed = clock() - began
        current = [rollouts[name] for name in names if name in rollouts]
        for line in log.lines(current, elapsed):
            show(line)
        if len(current) == len(names) and all(r.done for r in current):
            return finish(READY, None)
        failing = [r for r in current if r.failed and not r.done]
        if failing and fail_fast:
            message = "\n\n".join(failure_message(r, watcher.namespace) for r in failing)
            return finish(FAILED, message, failing)
        now = clock()
        if now >= deadline:
            pending = [r for r in current if not r.done]
            lines = "\n".join(
                r.summary + (f" (would not heal: {r.reason})" if r.failed else "") for r in pending
            )
            message = (
                f"timed out after {format_duration(timeout)} waiting for "
                f"Deployment(s) {', '.join(names)} in namespace {watcher.namespace}:\n{lines}"
            )
            if failing:
                message += "\n\n" + "\n\n".join(
                    failure_message(r, watcher.namespace) for r in failing
                )
            return finish(TIMED_OUT, message, failing)
        pause = max(0.0, round_began + poll_interval - now)
        sleep(min(pause, max(0.0, deadline - now)))


def fail_as_documentation_stub(name: str, argument_spec: dict[str, Any]) -> None:
    """main() of a module file that only documents an action plugin: it must never run on a host."""
    from ansible.module_utils.basic import AnsibleModule

    # bypass_checks: whatever the arguments, say why this file must not run on a host.
    module = AnsibleModule(
        argument_spec=argument_spec, bypass_checks=True, supports_check_mode=True
    )
    module.fail_json(
        msg=f"haw.icc.{name} runs as an action plugin on the controller; "
        "this module file only documents it and must not be executed on a host"
    )
