# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.namespace_lease: one run at a time writes to a namespace.

It runs on the controller because the Lease names the ansible-playbook process (the worker's
parent) and the machine it runs on, and because it prints while it waits. What to do with a Lease
found is decided in module_utils/cluster/lease.py; this file reads and writes the Lease.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from datetime import datetime
from typing import Any

from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import (
    ApiError,
    ClusterApi,
    resource_path,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.lease import (
    BUSY,
    CREATE,
    Holder,
    LeaseView,
    busy_message,
    decide,
    lease_body,
    process_alive,
    show_seconds,
    show_time,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    ConnectionProblem,
    KubernetesAction,
)

display = Display()
WAIT_LINE_SECONDS = 30  # a line at most this often while waiting for another run
LEASES = "coordination.k8s.io/v1"


class LeaseClient:
    """Reads and writes one Lease; a missing one (404) is None. Times are the API server's."""

    def __init__(self, api: ClusterApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace, self.name = namespace, name
        self.path = resource_path(LEASES, "leases", namespace, name)

    def now(self) -> datetime:
        return self.api.now()

    @staticmethod
    def _absent_is_none(send: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return send(*args)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def read(self) -> dict[str, Any] | None:
        return self.api.get(self.path, missing_ok=True)

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self.api.create(resource_path(LEASES, "leases", self.namespace), body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._absent_is_none(self.api.replace, self.path, body)

    def delete(self, resource_version: str | None) -> dict[str, Any] | None:
        body = {"preconditions": {"resourceVersion": resource_version}}
        return self._absent_is_none(self.api.delete, self.path, body)


def this_run(playbook: str) -> Holder:
    """The ansible-playbook process this task belongs to: a task runs in a worker forked from
    it, so it is the worker's parent."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Holder(user, socket.gethostname(), os.getppid(), playbook)


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        if args["duration"] < 1 or args["wait"] < 0 or args["poll_interval"] < 1:
            return self._fail(result, "duration and poll_interval must be >= 1, wait >= 0")
        namespace = args["namespace"]
        me = this_run(args["playbook"])
        result.update(held=False, lease=args["name"], holder=me.identity)
        try:
            leases = LeaseClient(self._cluster_api(args), namespace, args["name"])
            if args["state"] == "absent":
                return self._release(result, leases, me)
            if self._task.check_mode:
                return self._look(result, leases, me)
            return self._take(result, leases, me, args)
        except ConnectionProblem as problem:
            # Connecting reads the server's discovery: a server lost since the run's earlier
            # tasks comes as the connection check's ConnectionProblem.
            if args["state"] == "absent":
                return self._not_given_back(result, args["name"], namespace, problem)
            raise
        except ApiError as problem:
            if problem.status == 403:
                return self._unprotected(result, namespace, problem)
            if args["state"] == "absent":
                return self._not_given_back(result, args["name"], namespace, problem)
            return self._fail(result, f"Lease {args['name']} in namespace {namespace}: {problem}")

    @staticmethod
    def _not_given_back(result: JSON, name: str, namespace: str, problem: Exception) -> JSON:
        """A release that fails must not hide why the run failed: the Lease expires."""
        result["msg"] = (
            f"Lease {name} in namespace {namespace} not given back ({problem}); it expires on "
            "its own"
        )
        result["warnings"] = [result["msg"]]
        return result

    @staticmethod
    def _unprotected(result: dict[str, Any], namespace: str, problem: ApiError) -> dict[str, Any]:
        """Without the right to use Leases the run goes on, unprotected, and says so."""
        result["msg"] = (
            f"not protected against concurrent runs: Leases may not be used in namespace "
            f"{namespace} ({problem}); a run started meanwhile could overwrite this one. Ask for "
            "get, create, update and delete on coordination.k8s.io leases there."
        )
        result["warnings"] = [result["msg"]]
        return result

    def _look(self, result: dict[str, Any], leases: LeaseClient, me: Holder) -> dict[str, Any]:
        """Check mode: say who holds the namespace, write nothing."""
        found = leases.read()
        view = LeaseView.from_object(found) if found else None
        decision = decide(view, me, leases.now(), process_alive)
        if decision.action == BUSY:
            result["msg"] = "check mode: " + busy_message(leases.namespace, view, leases.now())
            result["warnings"] = [result["msg"]]
        else:
            result["msg"] = f"check mode: no Lease taken ({decision.reason})"
        return result

    def _take(
        self, result: dict[str, Any], leases: LeaseClient, me: Holder, args: dict[str, Any]
    ) -> dict[str, Any]:
        began = time.monotonic()
        last_line = None
        while True:
            found = leases.read()
            view = LeaseView.from_object(found) if found else None
            now = leases.now()
            decision = decide(view, me, now, process_alive, args["force"])
            if decision.action != BUSY:
                body = lease_body(leases.name, me, args["duration"], now, view)
                try:
                    written = (leases.create if decision.action == CREATE else leases.replace)(body)
                except ApiError as problem:
                    if problem.status == 409:  # another run wrote first: look again
                        continue
                    raise
                if written is None:  # deleted between read and replace: look again
                    continue
                return self._held(result, leases, me, LeaseView.from_object(written), decision)
            waited = time.monotonic() - began
            if waited >= args["wait"]:
                message = busy_message(leases.namespace, view, now)
                if args["wait"]:
                    message += f" (waited {show_seconds(waited)})"
                result["busy_holder"] = view.identity
                return self._fail(result, message)
            if last_line is None or time.monotonic() - last_line >= WAIT_LINE_SECONDS:
                last_line = time.monotonic()
                display.display(
                    f"[{leases.namespace}] waiting for {view.describe_holder()} to finish "
                    f"({show_seconds(waited)} of {show_seconds(args['wait'])} waited)"
                )
            time.sleep(min(args["poll_interval"], max(0.1, args["wait"] - waited)))

    @staticmethod
    def _held(
        result: dict[str, Any], leases: LeaseClient, me: Holder, view: LeaseView, decision: Any
    ) -> dict[str, Any]:
        result.update(held=True, expires=show_time(view.expires))
        result["msg"] = (
            f"namespace {leases.namespace} held by {me.describe()} until "
            f"{show_time(view.expires)} at the latest (Lease {leases.name}; {decision.reason})"
        )
        if decision.took_over:
            result["took_over"] = decision.reason
            result["warnings"] = [f"{leases.namespace}: took the namespace over: {decision.reason}"]
        return result

    @staticmethod
    def _release(result: dict[str, Any], leases: LeaseClient, me: Holder) -> dict[str, Any]:
        for _attempt in range(3):
            found = leases.read()
            if found is None:
                result["msg"] = f"no Lease {leases.name} in namespace {leases.namespace}"
                return result
            view = LeaseView.from_object(found)
            if view.identity != me.identity:
                result["msg"] = (
                    f"Lease {leases.name} in namespace {leases.namespace} is held by "
                    f"{view.describe_holder()}, not by this run: left alone"
                )
                result["warnings"] = [result["msg"]]
                return result
            try:
                leases.delete(view.resource_version)
            except ApiError as problem:
                if problem.status == 409:  # changed since read: look again
                    continue
                raise
            result["msg"] = f"namespace {leases.namespace} released (Lease {leases.name} deleted)"
            return result
        result["msg"] = f"Lease {leases.name} kept changing; not released"
        result["warnings"] = [result["msg"]]
        return result
