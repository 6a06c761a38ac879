# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The base of the collection's action plugins that talk to the Kubernetes API themselves.

They run on the controller (wait_for_rollout, tgi_model_switch) so that they can print progress
while they wait. Their client comes from kubernetes.core's auth options and environment variables
through module_utils/cluster/connection.py, exactly as in the collection's modules.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ClusterApi
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import (
    ConnectionProblem,
    Credentials,
    api_client,
    auth_options,
)
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)
from ansible_collections.haw.icc.plugins.plugin_utils.worker_memory import freeze_imported_objects

__all__ = ["JSON", "ConnectionProblem", "KubernetesAction"]


class KubernetesAction(ControllerAction):
    """A controller action that talks to the Kubernetes API."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        # A module would get the task's `environment:` (login.yml clears K8S_AUTH_HOST with it);
        # this runs in Ansible's worker, whose environment is the controller's.
        with self._task_environment():
            return super().run(tmp, task_vars)

    def _act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        """act(); a connection that cannot be made (ConnectionProblem, from _connect or
        _cluster_api) fails the task with its reason, keeping the result so far."""
        try:
            return super()._act(result, args, task_vars)
        except ConnectionProblem as error:
            return self._fail(result, f"Cannot connect: {error}")

    @contextmanager
    def _task_environment(self) -> Any:
        """os.environ with the task's `environment:` on top, as long as the task runs."""
        given: dict[str, str] = {}
        environments = getattr(self._task, "environment", None) or []
        for environment in environments if isinstance(environments, list) else [environments]:
            if environment:
                given.update(
                    {str(k): str(v) for k, v in self._templar.template(environment).items()}
                )
        saved = {name: os.environ.get(name) for name in given}
        os.environ.update(given)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @staticmethod
    def _connect(args: dict[str, Any], probe: bool = True) -> tuple[ClusterApi, Credentials]:
        """The request layer (module_utils/cluster/api.py) over the client kubernetes.core makes
        from the task's auth options (or K8S_AUTH_*, in-cluster, KUBECONFIG, ~/.kube/config, in
        kubernetes.core's order), and where its credentials come from (with `probe`, the
        server's version too: connection.api_client).

        Raises ConnectionProblem saying why there is none (without `probe`, at the first request).
        """
        try:
            return api_client(auth=auth_options(args), probe=probe)
        except ImportError as error:  # pragma: no cover - the collection requires it
            raise ConnectionProblem(
                "the kubernetes Python library is needed on the Ansible controller "
                f"(pip install kubernetes): {error}"
            ) from error

    @classmethod
    def _cluster_api(cls, args: dict[str, Any]) -> ClusterApi:
        """_connect()'s request layer alone, without asking the version first."""
        return cls._connect(args, probe=False)[0]

    @staticmethod
    def _timing_problem(args: dict[str, Any], durations: tuple[str, ...]) -> str | None:
        """What is wrong with the poll interval and the `durations` (seconds) of a wait."""
        if args["poll_interval"] >= 1 and min(args[name] for name in durations) >= 0:
            return None
        names = f"{', '.join(durations[:-1])} and {durations[-1]}"
        return f"poll_interval must be >= 1; {names} >= 0"


# Again once the kubernetes client is imported (module_utils/cluster), the largest part.
freeze_imported_objects()
