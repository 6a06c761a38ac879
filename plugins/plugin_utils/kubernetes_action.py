# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The base of the collection's action plugins that talk to the Kubernetes API themselves.

They run on the controller (wait_for_rollout, tgi_model_switch) so that they can print progress
while they wait; this class holds what they share: no connection to a host, check mode, the
failure shape and the client built from kubernetes.core's auth options.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.haw.icc.plugins.module_utils.k8s_client import (
    AUTH_ARGUMENT_SPEC,
    K8S_IMPORT_ERROR,
    SetupError,
    auth_from,
    build_api_client,
)


class KubernetesAction(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    @staticmethod
    def _fail(result: dict[str, Any], message: str) -> dict[str, Any]:
        result["failed"] = True
        result["msg"] = message
        return result

    @staticmethod
    def _api_client(args: dict[str, Any]) -> Any:
        """A kubernetes ApiClient from the task's auth options (or K8S_AUTH_* / KUBECONFIG).

        Raises SetupError saying why there is none: no library, no kubeconfig, a broken one.
        """
        if K8S_IMPORT_ERROR is not None:
            raise SetupError(
                "the kubernetes Python library is needed on the Ansible controller "
                f"(pip install kubernetes): {K8S_IMPORT_ERROR}"
            )
        environ = dict(os.environ)
        given = {key: value for key, value in args.items() if key in AUTH_ARGUMENT_SPEC}
        return build_api_client(auth_from(given, environ), environ)
