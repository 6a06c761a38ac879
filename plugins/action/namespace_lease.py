# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.namespace_lease: one run at a time writes to a namespace.

It runs on the controller because the Lease names the ansible-playbook process (the worker's
parent) and the machine it runs on, and because it prints while it waits. What to do with a Lease
found is decided in module_utils/cluster/lease.py; this file reads and writes the Lease.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import CoordinationApi
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import (
    REQUEST_TIMEOUT,
    api_message,
    unreachable_message,
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
from ansible_collections.haw.icc.plugins.modules.namespace_lease import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    ConnectionProblem,
    KubernetesAction,
)

try:
    import urllib3
    from kubernetes import client as k8s_client
except ImportError:  # the client comes from cluster_access, which says so
    pass

display = Display()
WAIT_LINE_SECONDS = 30  # a line at most this often while waiting for another run


class LeaseApiProblem(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LeaseClient:
    """Reads and writes one Lease; keeps the API server's clock from its Date headers."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        self.coordination = CoordinationApi(api)
        self.namespace, self.name = namespace, name
        self.server = api.configuration.host
        self.skew = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.skew  # noqa: UP017

    def _note_clock(self, headers: Any) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self.skew = parsedate_to_datetime((headers or {})["Date"]) - datetime.now(
                timezone.utc  # noqa: UP017
            )

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The answer as a dict; None for 404."""
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except k8s_client.ApiException as error:
            self._note_clock(error.headers)
            if error.status == 404:
                return None
            raise LeaseApiProblem(api_message(error), error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise LeaseApiProblem(unreachable_message(self.server, error)) from error
        self._note_clock(response.headers)
        return json.loads(response.data or b"{}")

    def read(self) -> dict[str, Any] | None:
        return self._call(self.coordination.read_namespaced_lease, self.name, self.namespace)

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call(self.coordination.create_namespaced_lease, self.namespace, body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call(
            self.coordination.replace_namespaced_lease, self.name, self.namespace, body
        )

    def delete(self, resource_version: str | None) -> dict[str, Any] | None:
        body = {"preconditions": {"resourceVersion": resource_version}}
        return self._call(
            self.coordination.delete_namespaced_lease, self.name, self.namespace, body=body
        )


def this_run(playbook: str) -> Holder:
    """The ansible-playbook process this task belongs to: a task runs in a worker forked from
    it, so it is the worker's parent."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Holder(user, socket.gethostname(), os.getppid(), playbook)


class ActionModule(KubernetesAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        if args["duration"] < 1 or args["wait"] < 0 or args["poll_interval"] < 1:
            return self._fail(result, "duration and poll_interval must be >= 1, wait >= 0")
        namespace = args["namespace"]
        me = this_run(args["playbook"])
        result.update(held=False, lease=args["name"], holder=me.identity)
        try:
            leases = LeaseClient(self._api_client(args), namespace, args["name"])
        except ConnectionProblem as error:
            return self._fail(result, f"Cannot connect: {error}")
        try:
            if args["state"] == "absent":
                return self._release(result, leases, me)
            if self._task.check_mode:
                return self._look(result, leases, me)
            return self._take(result, leases, me, args)
        except LeaseApiProblem as problem:
            if problem.status == 403:
                return self._unprotected(result, namespace, problem)
            if args["state"] == "absent":
                # A release that fails must not hide why the run failed: the Lease expires.
                result["msg"] = (
                    f"Lease {args['name']} in namespace {namespace} not given back ({problem}); "
                    "it expires on its own"
                )
                result["warnings"] = [result["msg"]]
                return result
            return self._fail(result, f"Lease {args['name']} in namespace {namespace}: {problem}")

    @staticmethod
    def _unprotected(
        result: dict[str, Any], namespace: str, problem: LeaseApiProblem
    ) -> dict[str, Any]:
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
                except LeaseApiProblem as problem:
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
            except LeaseApiProblem as problem:
                if problem.status == 409:  # changed since read: look again
                    continue
                raise
            result["msg"] = f"namespace {leases.namespace} released (Lease {leases.name} deleted)"
            return result
        result["msg"] = f"Lease {leases.name} kept changing; not released"
        result["warnings"] = [result["msg"]]
        return result
