# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Merging a downloaded kubeconfig into the one a user already has, as plain data.

The ICC login portal hands out a kubeconfig with one cluster, one user and one context. Users
often have a kubeconfig already (other clusters, a local one), so the downloaded file is merged
into it by name instead of replacing it:

- a cluster, user or context that the target lacks is added (after the target's own entries);
- one with the same name and the same content is left alone (nothing changes, nothing is
  written: a second login is a no-op);
- one with the same name and other content is replaced in place. That is what a fresh download
  means: a token the portal renewed, or a new certificate. The caller keeps the previous file as
  a backup, so nothing is lost; renaming instead would leave contexts pointing at the old entry.

Relative file references in the downloaded file (certificate-authority, client-certificate,
client-key, tokenFile) are relative to that file; they are made absolute, so they still work
from the target's directory. The chosen context gets the namespace. Nothing here reads files,
talks to a cluster or needs Ansible; the module kubeconfig_install does the I/O.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any

SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
# Keys whose values are paths, relative to the kubeconfig file that holds them.
PATH_KEYS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}
# Keys whose values are secrets (or, for the certificate data, long blobs nobody reads).
SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "client-key-data",
        "client-certificate-data",
        "certificate-authority-data",
        "id-token",
        "refresh-token",
        "client-secret",
        "access-token",
    }
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_LABEL_RULE = (
    "lowercase letters, digits and '-', at most 63 characters, starting and ending with a "
    "letter or digit"
)
# An ICC student login: "inf" followed by the rest of the namespace's name (infwabc123).
STUDENT_LOGIN = re.compile(r"^inf([a-z][a-z0-9]*[0-9])$")


class KubeconfigProblem(ValueError):
    """A kubeconfig, or a value given for it, that cannot be used; the message says why."""


def empty_kubeconfig() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
    }


def is_dns_label(name: Any) -> bool:
    return isinstance(name, str) and bool(DNS_LABEL.match(name))


def namespace_for_login(login: str | None) -> str | None:
    """The namespace of an ICC student login (infwabc123 -> wabc123-default), else None."""
    match = STUDENT_LOGIN.match(login or "")
    return f"{match.group(1)}-default" if match else None


def kubeconfig_problems(data: Any, label: str) -> list[str]:
    """Why `data` (a loaded YAML document) is no usable kubeconfig; empty when it is one.

    `label` names the file in the messages. An empty list of contexts is a problem only for a
    downloaded file, so the caller checks that."""
    if not isinstance(data, dict):
        return [f"{label} is not a kubeconfig: it holds no mapping"]
    problems = []
    if data.get("kind") not in (None, "Config"):
        problems.append(f"{label} is not a kubeconfig: its kind is {data.get('kind')!r}")
    for section, body in SECTIONS:
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(f"{label}: {section} is not a list")
            continue
        seen = set()
        for position, entry in enumerate(entries, 1):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                problems.append(f"{label}: entry {position} of {section} has no name")
            elif not isinstance(entry.get(body), dict):
                problems.append(f"{label}: {body} {name!r} has no {body} mapping")
            elif name in seen:
                problems.append(f"{label}: {section} has {name!r} twice")
            seen.add(name)
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        problems.append(f"{label}: current-context is not a name")
    return problems


def _entries(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return list(data.get(section) or [])


def _named(data: dict[str, Any], section: str, name: str) -> dict[str, Any] | None:
    return next((e for e in _entries(data, section) if e.get("name") == name), None)


def choose_context(data: dict[str, Any], wanted: str | None, label: str) -> dict[str, Any]:
    """The context to install: `wanted`, else the file's current context, else its only one.
    Its cluster and user must be in the same file."""
    contexts = _entries(data, "contexts")
    names = [entry["name"] for entry in contexts]
    if not contexts:
        raise KubeconfigProblem(f"{label} has no context: it is not a kubeconfig to log in with")
    if wanted:
        chosen = _named(data, "contexts", wanted)
        if chosen is None:
            raise KubeconfigProblem(f"{label} has no context {wanted!r}; it has {', '.join(names)}")
    elif data.get("current-context") and _named(data, "contexts", data["current-context"]):
        chosen = _named(data, "contexts", data["current-context"])
    elif len(contexts) == 1:
        chosen = contexts[0]
    else:
        raise KubeconfigProblem(
            f"{label} has several contexts and no current one: choose one with "
            f"-e icc_login_context=<name> ({', '.join(names)})"
        )
    body = chosen["context"]
    for section, key in (("clusters", "cluster"), ("users", "user")):
        if not body.get(key):
            raise KubeconfigProblem(f"{label}: context {chosen['name']!r} names no {key}")
        if _named(data, section, body[key]) is None:
            raise KubeconfigProblem(
                f"{label}: context {chosen['name']!r} uses the {key} {body[key]!r}, which the "
                "file does not hold"
            )
    return chosen


def choose_namespace(
    namespace: str | None, login: str | None, context: dict[str, Any]
) -> tuple[str, str]:
    """(namespace, where it came from): the one given, else the one of the ICC login (given, or
    the context's user name), else the one the context already has."""
    if namespace:
        return namespace, "given"
    login = login or context["context"].get("user")
    derived = namespace_for_login(login)
    if derived:
        return derived, f"from the login {login}"
    if context["context"].get("namespace"):
        return context["context"]["namespace"], "from the kubeconfig's context"
    raise KubeconfigProblem(
        f"the namespace cannot be derived from the login {login!r} (only a student login like "
        "infwabc123 gives one, wabc123-default): give it with -e icc_namespace=<namespace>"
    )


def absolute_paths(data: dict[str, Any], directory: str) -> dict[str, Any]:
    """A copy of `data` whose relative file references are relative to `directory` no more."""
    result = copy.deepcopy(data)
    for section, body in SECTIONS:
        for entry in _entries(result, section):
            for key in PATH_KEYS.get(body, ()):
                value = entry[body].get(key)
                if isinstance(value, str) and value and not os.path.isabs(value):
                    entry[body][key] = os.path.normpath(
                        os.path.join(directory, os.path.expanduser(value))
                    )
    return result


@dataclass
class Merge:
    """The merged kubeconfig and what happened to each entry of the downloaded one."""

    config: dict[str, Any]
    added: list[str] = field(default_factory=list)  # "context infwabc123@icc"
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    current_context: str = ""
    current_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced) or self.current_changed


def merge(
    existing: dict[str, Any] | None,
    downloaded: dict[str, Any],
    context_name: str,
    namespace: str,
    use_context: bool | None,
) -> Merge:
    """`downloaded`'s clusters, users and contexts merged into `existing` (None: no file yet),
    with `namespace` set on the context `context_name`. `use_context`: make it the current
    context (True), leave the current one (False), or only when there is none (None)."""
    target = copy.deepcopy(existing) if existing else empty_kubeconfig()
    incoming = copy.deepcopy(downloaded)
    for entry in _entries(incoming, "contexts"):
        if entry["name"] == context_name:
            entry["context"]["namespace"] = namespace
    result = Merge(target)
    for section, body in SECTIONS:
        entries = _entries(target, section)
        for entry in _entries(incoming, section):
            label = f"{body} {entry['name']}"
            position = next(
                (i for i, have in enumerate(entries) if have.get("name") == entry["name"]), None
            )
            if position is None:
                entries.append(entry)
                result.added.append(label)
            elif entries[position] == entry:
                result.unchanged.append(label)
            else:
                entries[position] = entry
                result.replaced.append(label)
        target[section] = entries
    had_current = bool(target.get("current-context"))
    if use_context or (use_context is None and not had_current):
        result.current_changed = target.get("current-context") != context_name
        target["current-context"] = context_name
    result.current_context = target.get("current-context") or ""
    return result


class Masker:
    """Replaces secret values by numbered placeholders: the same value gets the same number in
    every document masked by one Masker, so a diff shows that a token changed, never the token."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def __call__(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                key: self._placeholder(value)
                if key in SECRET_KEYS and isinstance(value, str)
                else self(value)
                for key, value in data.items()
            }
        if isinstance(data, list):
            return [self(item) for item in data]
        return data

    def _placeholder(self, value: str) -> str:
        number = self._numbers.setdefault(value, len(self._numbers) + 1)
        return f"<hidden value {number}>"


def secret_values(data: Any) -> set[str]:
    """Every secret value in a kubeconfig, to keep out of any output."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in SECRET_KEYS and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= secret_values(value)
    elif isinstance(data, list):
        for item in data:
            found |= secret_values(item)
    return found
