# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Connecting a module to the cluster through kubernetes.core, with errors a student can act on.

Shared by the modules that talk to the API (cluster_preflight, gpu_capacity_check) and, for
`api_message`, by the action plugins' client (k8s_client).
"""

from __future__ import annotations

import json

from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError
except ImportError:  # reported by AnsibleK8SModule's requirement check
    pass


def api_message(error):
    """The API server's message out of an ApiException, else the status and reason."""
    body = getattr(error, "body", None)
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        message = body if isinstance(body, str) else None
    return message or f"{getattr(error, 'status', '')} {getattr(error, 'reason', '')}".strip()


def connect(module, result, ask_version=True):
    """(kubernetes ApiClient, server version or None), or fail the task saying why the cluster
    cannot be used; `result` goes with the failure so partial results are kept."""
    server = "the cluster"
    try:
        # Building the dynamic client already asks the server for its version.
        api_client = get_api_client(module).client.client
        server = api_client.configuration.host
        version = k8s.VersionApi(api_client).get_code().git_version if ask_version else None
    except CoreException as error:
        module.fail_json(msg=f"Cannot use the kubeconfig: {error}", **result)
    except ApiException as error:
        if error.status in (401, 403):
            module.fail_json(
                msg=f"The cluster at {server} refused the credentials: {api_message(error)}",
                **result,
            )
        module.fail_json(
            msg=f"The cluster at {server} answered {error.status}: {api_message(error)}", **result
        )
    except (HTTPError, OSError) as error:
        # The connection pool knows the address that failed even before the client existed.
        pool = getattr(error, "pool", None)
        server = f"https://{pool.host}:{pool.port}" if pool is not None else server
        module.fail_json(
            msg=f"Cannot reach the cluster at {server}: {getattr(error, 'reason', error)}. "
            "Check KUBECONFIG or icc_kubeconfig, the context, and your network (VPN).",
            **result,
        )
    return api_client, version
