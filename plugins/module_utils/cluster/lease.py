# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Who may write to a namespace now: the pure logic of haw.icc.namespace_lease.

A run of deploy.yml, change_model.yml, scale.yml or cleanup.yml holds a coordination.k8s.io/v1
Lease (LEASE_NAME) in the namespace while it writes. Its holderIdentity names the run
(`user@host pid N playbook`), its renewTime plus leaseDurationSeconds says until when the run
may still be writing; after that, or when the holder was a process on this machine that no
longer exists, anyone may take it. Nothing here talks to the cluster: the action plugin reads
the Lease, asks `decide` what to do and writes what `lease_body` gives, with the Lease's
resourceVersion so that of two simultaneous takers only one succeeds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    format_duration as show_seconds,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import parse_time

LEASE_NAME = "haw-icc"
MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"
# Takeover reasons and actions of `decide`.
CREATE, TAKE, BUSY = "create", "take", "busy"

_IDENTITY = re.compile(r"^(?P<user>[^@\s]+)@(?P<host>\S+) pid (?P<pid>\d+) (?P<playbook>\S.*)$")


@dataclass(frozen=True)
class Holder:
    """One run of a playbook: who started it, on which machine, its process and playbook."""

    user: str
    host: str
    pid: int
    playbook: str

    @property
    def identity(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid} {self.playbook}"

    @classmethod
    def parse(cls, identity: str | None) -> Holder | None:
        """The run an identity written by `identity` names; None for anything else."""
        match = _IDENTITY.match(identity or "")
        if not match:
            return None
        return cls(match["user"], match["host"], int(match["pid"]), match["playbook"])

    def describe(self) -> str:
        return f"{self.user}@{self.host} (PID {self.pid}, {self.playbook})"


def format_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (UTC, six fraction digits, Z)."""
    return moment.astimezone(timezone.utc).strftime(MICROTIME)  # noqa: UP017


def show_time(moment: datetime | None) -> str:
    """A time for people: `2026-11-29 12:40:05 UTC`."""
    if moment is None:
        return "an unknown time"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")  # noqa: UP017


@dataclass(frozen=True)
class LeaseView:
    """What matters of a Lease object (a dict as the API returns it)."""

    identity: str | None
    acquired: datetime | None
    renewed: datetime | None
    duration: int | None
    resource_version: str | None
    transitions: int = 0

    @classmethod
    def from_object(cls, lease: dict[str, Any]) -> LeaseView:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            identity=spec.get("holderIdentity") or None,
            acquired=parse_time(spec.get("acquireTime")),
            renewed=parse_time(spec.get("renewTime")),
            duration=duration if isinstance(duration, int) else None,
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
            transitions=spec.get("leaseTransitions") or 0,
        )

    @property
    def holder(self) -> Holder | None:
        return Holder.parse(self.identity)

    @property
    def expires(self) -> datetime | None:
        """Until when the holder may still be writing; None when the Lease cannot say."""
        start = self.renewed or self.acquired
        if start is None or self.duration is None:
            return None
        return start + timedelta(seconds=self.duration)

    def describe_holder(self) -> str:
        holder = self.holder
        return holder.describe() if holder else repr(self.identity)


@dataclass(frozen=True)
class Decision:
    action: str  # CREATE, TAKE or BUSY
    reason: str  # why, in words; for TAKE from another run, whose run it was and why it may go
    took_over: bool = False  # TAKE from another run


def decide(
    lease: LeaseView | None,
    me: Holder,
    now: datetime,
    process_alive: Callable[[int], bool],
    force: bool = False,
) -> Decision:
    """What a run `me` may do with the namespace's Lease at `now`.

    Taken over are: a Lease without holder, one of this very run, one past its expiry (or with
    no expiry it could keep), one whose holder is a process of this machine that is gone, and
    with `force` any Lease at all.
    """
    if lease is None:
        return Decision(CREATE, "the namespace was free")
    if not lease.identity:
        return Decision(TAKE, "the namespace was free (a Lease without holder)")
    if lease.identity == me.identity:
        return Decision(TAKE, "this run holds it already")
    held = f"it was held by {lease.describe_holder()} since {show_time(lease.acquired)}"
    if force:
        return Decision(TAKE, f"{held}; broken by icc_lease_break=true", took_over=True)
    expires = lease.expires
    if expires is None:
        return Decision(TAKE, f"{held}, with no expiry this collection can keep", took_over=True)
    if now >= expires:
        return Decision(TAKE, f"{held} and expired at {show_time(expires)}", took_over=True)
    holder = lease.holder
    if holder is not None and holder.host == me.host and not process_alive(holder.pid):
        return Decision(
            TAKE, f"{held}, but process {holder.pid} on this machine is gone", took_over=True
        )
    return Decision(BUSY, busy_message("", lease, now))


def busy_message(namespace: str, lease: LeaseView, now: datetime) -> str:
    """One line: who holds the namespace since when and until when, and what to do."""
    where = f"Namespace {namespace}" if namespace else "The namespace"
    expires = lease.expires
    until = (
        f"until {show_time(expires)} at the latest ({show_seconds((expires - now).total_seconds())}"
        " from now)"
        if expires
        else "with no expiry"
    )
    return (
        f"{where} is in use by another run: {lease.describe_holder()} holds it since "
        f"{show_time(lease.acquired)}, {until}. Wait for it with -e icc_lease_wait=<seconds>; "
        "if that run is dead (its machine crashed), take the namespace over with "
        f"-e icc_lease_break=true (or delete the Lease: kubectl -n {namespace or '<namespace>'} "
        f"delete lease {LEASE_NAME})"
    )


def lease_body(
    name: str, me: Holder, duration: int, now: datetime, previous: LeaseView | None
) -> dict[str, Any]:
    """The Lease `me` writes to hold the namespace for `duration` seconds from `now`.

    With a `previous` Lease its resourceVersion goes along, so the API server refuses the write
    (409) when someone else changed the Lease since it was read. This run keeps its first
    acquireTime when it takes its own Lease again; leaseTransitions counts changes of holder.
    """
    stamp = format_time(now)
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "haw.icc"},
    }
    acquired = stamp
    transitions = 0
    if previous is not None:
        metadata["resourceVersion"] = previous.resource_version
        transitions = previous.transitions
        if previous.identity == me.identity and previous.acquired is not None:
            acquired = format_time(previous.acquired)
        elif previous.identity:
            transitions += 1
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": me.identity,
            "leaseDurationSeconds": int(duration),
            "acquireTime": acquired,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def process_alive(pid: int, proc: str = "/proc") -> bool:
    """Whether process `pid` of this machine still runs an Ansible command.

    A PID that exists but, where /proc tells, runs something other than Ansible was reused
    after the run died and counts as gone. A process of another user counts as alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as stream:
            command = stream.read()
    except OSError:
        return True  # no /proc to tell: the PID exists
    return b"ansible" in command
