# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.keep_secrets: a namespace's Secrets in one process, values unseen."""

from __future__ import annotations

from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.apply import (
    apply_object,
    secret_definition,
    secret_path,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        namespace, check = args["namespace"], self._task.check_mode
        result.update(versions={}, present={})
        api = self._cluster_api(args)
        written = []

        def note_live(name: str, live: dict[str, Any] | None) -> None:
            result["present"][name] = live is not None
            if live is not None:
                result["versions"][name] = live["metadata"]["resourceVersion"]

        try:
            for name in args["read"]:
                note_live(name, api.get(secret_path(namespace, name), missing_ok=True))
            for wanted in args["secrets"]:
                name = wanted["name"]
                live = api.get(secret_path(namespace, name), missing_ok=True)
                definition = secret_definition(wanted, live)
                if definition is None or not args["apply"]:
                    note_live(name, live)
                    continue
                outcome = apply_object(
                    api, namespace, definition, "present", args["field_manager"], check, live
                )
                pending = "+" if check and outcome.changed else ""
                result["present"][name] = True
                result["versions"][name] = outcome.resource_version + pending
                if outcome.changed:
                    result["changed"] = True
                    written.append(name)
        except ApiError as problem:
            return self._fail(result, f"Secrets in namespace {namespace}: {problem}")
        verb = "would write" if check else "wrote"
        result["msg"] = f"{verb} Secret {', '.join(written)}" if written else "no Secret changed"
        return result
