#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeconfig_install
short_description: Merge a downloaded kubeconfig into the user's own, keeping what is there
version_added: 0.1.0
description:
  - Takes a kubeconfig as the ICC login portal hands it out (O(src)) and merges its clusters,
    users and contexts into O(dest) by name, so that the other clusters and contexts of O(dest)
    stay as they are.
  - An entry O(dest) lacks is added. One with the same name and the same content is left alone,
    so a second run changes nothing. One with the same name and other content (a renewed token,
    say) is replaced in place; the previous O(dest) is kept as a backup, so nothing is lost.
  - Relative file references of O(src) (C(certificate-authority), C(client-certificate),
    C(client-key), C(tokenFile)) are made absolute, so they keep working from O(dest).
  - The installed context gets the namespace - O(namespace), else the one of the ICC login
    (O(login), else the context's user name; C(infwXYZ123) gives C(wXYZ123-default)), else the
    one the context already has.
  - Before anything is written, O(src), O(dest) and the values given are checked, and every
    problem is reported at once, one line each.
  - When O(dest) changes, its previous content is first copied to
    C(<dest>.<YYYYmmdd-HHMMSS>.bak) (mode 0600). O(dest) is written in one step (a file beside
    it, then renamed) with mode 0600; a directory it creates gets mode 0700.
  - The diff shows both versions with every token, password, key and certificate replaced by a
    numbered placeholder (the same value, the same number); secrets appear in no output.
author:
  - haw.icc developers (@haw-hamburg)
options:
  src:
    description: The downloaded kubeconfig.
    type: path
    required: true
  dest:
    description: The kubeconfig to install into; created when missing.
    type: path
    default: ~/.kube/config
  context:
    description:
      - The context of O(src) to set up (namespace, current context).
      - Unset, the current context of O(src), else its only context.
    type: str
  namespace:
    description: The namespace of the context (a DNS-1123 label). Unset, derived as above.
    type: str
  login:
    description:
      - The ICC login, for deriving the namespace. Unset, the user name of the context.
    type: str
  use_context:
    description:
      - Whether to make the context the current context of O(dest) - V(true), V(false), or
        unset (null or an empty string) for only when O(dest) has no current context yet.
      - Any of Ansible's boolean spellings (V(yes), V(no), V(1), V(0), ...).
    type: raw
  backup:
    description: Keep the previous O(dest) as a timestamped copy when it changes.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
requirements:
  - PyYAML (comes with Ansible)
"""

EXAMPLES = r"""
- name: Install the kubeconfig from the ICC login portal into ~/.kube/config
  haw.icc.kubeconfig_install:
    src: ~/Downloads/kubeconfig.yaml

- name: A course namespace, in a kubeconfig of its own, made the current context
  haw.icc.kubeconfig_install:
    src: ~/Downloads/kubeconfig.yaml
    dest: ~/.kube/icc.yaml
    namespace: ml-course-2026
    use_context: true
"""

RETURN = r"""
dest:
  description: The kubeconfig installed into, as an absolute path.
  returned: always
  type: str
  sample: /home/student/.kube/config
context:
  description: The context set up.
  returned: success
  type: str
  sample: infwabc123@icc
namespace:
  description: The namespace set on the context.
  returned: success
  type: str
  sample: wabc123-default
namespace_source:
  description: Where the namespace came from.
  returned: success
  type: str
  sample: from the login infwabc123
cluster:
  description: The cluster of the context.
  returned: success
  type: str
user:
  description: The user of the context.
  returned: success
  type: str
server:
  description: The API server of the context's cluster.
  returned: success
  type: str
  sample: https://icc-k8s-api.informatik.haw-hamburg.de
current_context:
  description: The current context of O(dest) afterwards.
  returned: success
  type: str
added:
  description: Entries added, as C(<kind> <name>).
  returned: success
  type: list
  elements: str
  sample: ["cluster icc", "user infwabc123", "context infwabc123@icc"]
replaced:
  description: Entries of the same name whose content was replaced.
  returned: success
  type: list
  elements: str
unchanged:
  description: Entries that were already there with the same content.
  returned: success
  type: list
  elements: str
backup_file:
  description: The copy of the previous O(dest), when one was made (or would be, in check mode).
  returned: when O(dest) existed and changed
  type: str
  sample: /home/student/.kube/config.20261129-101500.bak
msg:
  description: What was done, or every problem found, one per line.
  returned: always
  type: str
"""

import os
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", default="~/.kube/config"),
            context=dict(type="str"),
            namespace=dict(type="str"),
            login=dict(type="str"),
            use_context=dict(type="raw"),
            backup=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg="PyYAML is needed on the Ansible controller")
    src = os.path.abspath(module.params["src"])
    dest = os.path.abspath(module.params["dest"])
    result = dict(changed=False, dest=dest)
    downloaded, existing, context, namespace, source, use_context, problems = check(
        module.params, src, dest
    )
    if problems:
        module.fail_json(msg="\n".join(problems), **result)

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
        module.exit_json(**result)

    result["changed"] = True
    if merged.changed and module._diff:
        masker = Masker()
        result["diff"] = {
            "before_header": dest,
            "after_header": dest,
            "before": dump(masker(existing)) if existing is not None else "",
            "after": dump(masker(merged.config)),
        }
    if merged.changed and exists and module.params["backup"]:
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
        f"{'check mode: would change' if module.check_mode else 'changed'} {dest}: "
        + "; ".join(done)
        + (f" (previous file kept as {result['backup_file']})" if "backup_file" in result else "")
    )
    if module.check_mode:
        module.exit_json(**result)

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
        module.fail_json(msg=f"cannot write {dest}: {error}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
