# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.apply_objects: one process applies all of a namespace's objects."""

from __future__ import annotations

from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.apply import (
    ObjectProblem,
    carry_out,
    describe,
    object_path,
    plan_objects,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        result["objects"] = []
        wanted = [(d, "present") for d in args["objects"]] + [(d, "absent") for d in args["absent"]]
        secrets = [d for d, _state in wanted if d.get("kind") == "Secret"]
        if secrets:
            return self._fail(
                result,
                f"{describe(secrets[0])}: apply_objects does not apply Secrets "
                "(a diff would show their data); use haw.icc.keep_secrets",
            )
        api = self._cluster_api(args)
        manager = args["field_manager"]
        group = args["absent_group"]
        if group:
            try:
                found = api.get(object_path(group[0], args["namespace"]), missing_ok=True)
            except (ObjectProblem, ApiError) as problem:
                return self._fail(result, f"{describe(group[0])}: {problem}")
            if found is not None:  # gone first, the first last: a later run finds what is left
                wanted = [(d, "absent") for d in reversed(group)] + wanted
        # Everything read and dry-run first: a refusal stops the task before any write.
        plans = plan_objects(api, args["namespace"], wanted, manager)
        diffs = []
        for (definition, _state), planned in zip(wanted, plans):  # noqa: B905 - Python 3.8
            what = describe(definition)
            try:
                if isinstance(planned, Exception):
                    raise planned
                outcome = carry_out(api, planned, manager, self._task.check_mode)
            except ObjectProblem as problem:
                return self._fail(result, str(problem))
            except ApiError as problem:
                return self._fail(result, self._stopped_at(result, what, str(problem)))
            result["objects"].append(outcome.summary())
            if outcome.changed:
                result["changed"] = True
                diffs.append(
                    {
                        "before_header": f"{what} (live)",
                        "after_header": f"{what} ({outcome.state})",
                        "before": outcome.before or {},
                        "after": outcome.after or {},
                    }
                )
        if self._task.diff and diffs:
            result["diff"] = diffs
        changed = [f"{o['kind']}/{o['name']}" for o in result["objects"] if o["changed"]]
        verb = "would change" if self._task.check_mode else "changed"
        result["msg"] = f"{verb}: {', '.join(changed)}" if changed else "no change"
        return result

    @staticmethod
    def _stopped_at(result: dict[str, Any], what: str, problem: str) -> str:
        done = [f"{o['kind']}/{o['name']}" for o in result["objects"]]
        before = f" ({', '.join(done)} done before)" if done else ""
        return f"{what} was not applied{before}: {problem}"
