# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Reading, patching and waiting on Deployments, for the collection's action plugins.

`wait_for_rollout` and `tgi_model_switch` run on the controller (so that they can print progress
while they wait). They get their client from module_utils/cluster_access.py (kubernetes.core's),
read and patch Deployments through `RolloutWatcher`, and wait with `wait_for_rollouts`, which
turns what the pods do into lines through module_utils/pod_progress.py and hands them to a
callback.
"""

from __future__ import annotations

import json
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
    previous_revision,
)

try:
    import urllib3
    from kubernetes import client as k8s_client
except ImportError:  # the action plugins get their client from cluster_access, which says so
    pass

HEARTBEAT_SECONDS = 60.0
FIELD_MANAGER = "haw.icc"  # the roles' server-side apply uses the same manager
REQUEST_TIMEOUT = (10, 30)  # connect, read (seconds) for every API call
ERROR_TOLERANCE_SECONDS = 60.0  # how long API errors may last once the first poll worked


class ApiProblem(Exception):
    """An API call failed; `fatal` when waiting longer cannot help (404, 401, 403)."""

    def __init__(self, message: str, fatal: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


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

    def list_replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        return self._optional_list(
            "replicasets", self.apps.list_namespaced_replica_set, label_selector=selector
        )

    def rollout(
        self, deployment: dict[str, Any], events: list[dict[str, Any]], grace: float
    ) -> RolloutProgress:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        replicasets = self.list_replicasets(deployment)
        pods = self._optional_list("pods", self.core.list_namespaced_pod, label_selector=selector)
        progress = describe_rollout(deployment, replicasets, pods, events, self.now(), grace)
        if progress.replicaset:
            self.replicasets[progress.name] = progress.replicaset
        return progress


def undo_rollout(watcher: RolloutWatcher, name: str) -> tuple[int, int | None]:
    """Puts the revision before Deployment `name`'s newest one back, as `kubectl rollout undo`
    does: its pod template is written to the Deployment, and the controller scales its
    ReplicaSet up again. Returns (that revision, the generation the write made).

    The write tests the resourceVersion read, so a change made meanwhile is never overwritten.
    Raises ApiProblem saying why when there is no earlier revision or it cannot be written.
    """
    deployment = watcher.deployment(name)
    found = previous_revision(deployment, watcher.list_replicasets(deployment))
    if found is None:
        raise ApiProblem(
            f"Deployment {name} has no earlier revision to go back to (or its ReplicaSets "
            "cannot be listed)",
            fatal=True,
        )
    revision, template = found
    version = (deployment.get("metadata") or {}).get("resourceVersion") or ""
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    patched = watcher.patch_deployment(name, patch, FIELD_MANAGER)
    return revision, (patched.get("metadata") or {}).get("generation")


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
