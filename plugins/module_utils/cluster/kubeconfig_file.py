# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Installing a downloaded kubeconfig into the user's own file (haw.icc.kubeconfig_install): the
files around the merge of kubeconfig.py.

`install` checks the downloaded file, the target and the values given (every problem at once),
merges, shapes the task's result and, unless in check mode, writes: the previous file kept as a
backup first, the new one replaced in one step with mode 0600, a new directory with mode 0700.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.haw.icc.plugins.module_utils.cluster.kubeconfig import (
    DNS_LABEL_RULE,
    KubeconfigProblem,
    Masker,
    absolute_paths,
    choose_context,
    choose_namespace,
    is_dns_label,
    kubeconfig_problems,
    merge,
)

try:
    import yaml
except ImportError:  # Ansible itself needs PyYAML; reported below all the same
    yaml = None

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def load(path, label):
    """(data, problems) of a YAML file; data None for an empty file."""
    try:
        with open(path, encoding="utf-8") as stream:
            return yaml.safe_load(stream), []
    except (OSError, UnicodeDecodeError) as error:
        return None, [f"{label} cannot be read: {error}"]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        detail = getattr(error, "problem", None) or str(error).splitlines()[0]
        return None, [f"{label} is not YAML{line}: {detail}"]


def dump(data):
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def backup_name(dest):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, number = f"{dest}.{stamp}.bak", 1
    while os.path.exists(name):
        name, number = f"{dest}.{stamp}-{number}.bak", number + 1
    return name


def write_private(path, data, exclusive=False):
    """Writes `data` (bytes) to `path` with mode 0600; replaces it in one step unless
    `exclusive` (then the file must be new)."""
    if exclusive:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        return
    directory = os.path.dirname(path)
    descriptor, partial = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, FILE_MODE)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise


def use_context_value(value):
    """True, False or None (decide by whether there is a current context); raises ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return boolean(value, strict=True)


def check(params, src, dest):
    """(downloaded, existing, context, namespace, source, use_context, problems)."""
    problems = []
    downloaded, existing, context, namespace, source, use_context = (None,) * 6
    src_label = f"the downloaded kubeconfig {src}"
    if not os.path.isfile(src):
        problems.append(f"{src_label} does not exist (-e icc_login_kubeconfig=<file>)")
    else:
        downloaded, found = load(src, src_label)
        problems += found or kubeconfig_problems(downloaded, src_label)
        if not problems:
            try:
                context = choose_context(downloaded, params["context"], src_label)
                namespace, source = choose_namespace(params["namespace"], params["login"], context)
            except KubeconfigProblem as problem:
                problems.append(str(problem))
    for name in ("login", "namespace"):
        value = params[name]
        if value and not is_dns_label(value):
            problems.append(f"{name} {value!r} is not a valid name: {DNS_LABEL_RULE}")
    if namespace and not params["namespace"] and not is_dns_label(namespace):
        problems.append(f"namespace {namespace!r} ({source}) is not valid: {DNS_LABEL_RULE}")
    try:
        use_context = use_context_value(params["use_context"])
    except (TypeError, ValueError):
        problems.append(
            f"use_context {params['use_context']!r} is not a boolean: true, false, or empty "
            "for only when there is no current context yet"
        )
    dest_label = f"the kubeconfig {dest}"
    if os.path.isdir(dest):
        problems.append(f"{dest_label} is a directory")
    elif os.path.exists(dest):
        existing, found = load(dest, dest_label)
        if not found and existing is not None:
            found = kubeconfig_problems(existing, dest_label)
        problems += [f"{line}; it is left as it is" for line in found]
    return downloaded, existing, context, namespace, source, use_context, problems


class InstallFailed(Exception):
    """The install cannot be done (or was not completed): why, and the result so far."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def install(params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """Merges the kubeconfig `params["src"]` into `params["dest"]` (the task's options) and
    returns the task's result; in check mode writes nothing. Raises InstallFailed."""
    if yaml is None:
        raise InstallFailed("PyYAML is needed on the Ansible controller", {})
    src = os.path.abspath(params["src"])
    dest = os.path.abspath(params["dest"])
    result: dict[str, Any] = dict(changed=False, dest=dest)
    downloaded, existing, context, namespace, source, use_context, problems = check(
        params, src, dest
    )
    if problems:
        raise InstallFailed("\n".join(problems), result)

    incoming = absolute_paths(downloaded, os.path.dirname(src))
    merged = merge(existing, incoming, context["name"], namespace, use_context)
    body = context["context"]
    cluster = next(e for e in incoming["clusters"] if e["name"] == body["cluster"])
    result.update(
        context=context["name"],
        namespace=namespace,
        namespace_source=source,
        cluster=body["cluster"],
        user=body["user"],
        server=str(cluster["cluster"].get("server") or ""),
        current_context=merged.current_context,
        added=merged.added,
        replaced=merged.replaced,
        unchanged=merged.unchanged,
    )
    exists = os.path.exists(dest)
    mode_wrong = exists and stat.S_IMODE(os.stat(dest).st_mode) != FILE_MODE
    if not merged.changed and not mode_wrong:
        result["msg"] = f"{dest} already holds context {context['name']} (namespace {namespace})"
        return result

    result["changed"] = True
    if merged.changed and diff:
        masker = Masker()
        result["diff"] = {
            "before_header": dest,
            "after_header": dest,
            "before": dump(masker(existing)) if existing is not None else "",
            "after": dump(masker(merged.config)),
        }
    if merged.changed and exists and params["backup"]:
        result["backup_file"] = backup_name(dest)
    done = []
    if merged.added or merged.replaced:
        done.append(
            "; ".join(
                part
                for part in (
                    merged.added and f"added {', '.join(merged.added)}",
                    merged.replaced and f"replaced {', '.join(merged.replaced)}",
                )
                if part
            )
        )
    if merged.current_changed:
        done.append(f"current context now {context['name']}")
    if mode_wrong:
        done.append("mode set to 0600")
    result["msg"] = (
        f"{'check mode: would change' if check_mode else 'changed'} {dest}: "
        + "; ".join(done)
        + (f" (previous file kept as {result['backup_file']})" if "backup_file" in result else "")
    )
    if check_mode:
        return result

    try:
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=DIRECTORY_MODE)
            os.chmod(directory, DIRECTORY_MODE)  # whatever the umask
        if merged.changed:
            if "backup_file" in result:
                with open(dest, "rb") as stream:
                    write_private(result["backup_file"], stream.read(), exclusive=True)
            write_private(dest, dump(merged.config).encode("utf-8"))
        else:
            os.chmod(dest, FILE_MODE)
    except OSError as error:
        raise InstallFailed(f"cannot write {dest}: {error}", result) from error
    return result
