# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The one shape of a haw.icc module, and the helpers its file uses.

Every module of the collection is a pair (tests/unit/test_module_shape.py holds it):

- plugins/modules/<name>.py documents it and nothing else: DOCUMENTATION (the shared parts from
  the collection's doc_fragments: controller_action for every module, kubernetes for those that
  talk to the API), EXAMPLES, RETURN, ARGUMENT_SPEC and, for a run as a script (on a host), the
  refusal to run there (`fail_as_documentation_stub`, under `if __name__ == "__main__":`; no
  main() of its own). ansible-doc and ansible-test's validate-modules read it; the options are
  written once, in ARGUMENT_SPEC, for the docs' check and the plugin's validation.
- plugins/action/<name>.py does the work on the controller, in Ansible's process (no module
  process, which would import the kubernetes library again for every task and namespace): its
  ActionModule (plugin_utils/controller_action.py, or kubernetes_action.py for API access)
  validates the task's arguments against the module's ARGUMENT_SPEC, calls module_utils, prints
  what the user follows while it runs and shapes the result. What the work decides is pure logic
  in module_utils, with unit tests of its own.

Why not a module that runs: every haw.icc task works against the cluster or the controller's
files (kubeconfig, inventory), never on the inventory host; a module process per task and
namespace cost a second of imports each, and a module cannot print progress while it waits.
"""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC


def kubernetes_spec(**options: Any) -> dict[str, Any]:
    """The ARGUMENT_SPEC of a module that talks to the Kubernetes API: the namespace (the
    kubernetes doc fragment's), the module's own `options`, kubernetes.core's auth options."""
    return dict(
        namespace=dict(type="str", required=True), **options, **copy.deepcopy(AUTH_ARG_SPEC)
    )


def service_access_spec(app: str, service: str, port: int) -> dict[str, Any]:
    """The options by which an action plugin reaches the HTTP API of `app` (tgi, open_webui):
    `<app>_url` given, else its Service `<app>_service` (default `service`) on the port
    `<app>_service_port` (default `port`), by port-forward or the API server's service proxy
    (`<app>_access`). tgi_api_test reaches TGI and Open WebUI alike with them."""
    return {
        f"{app}_url": dict(type="str"),
        f"{app}_access": dict(
            type="str", choices=["port-forward", "proxy"], default="port-forward"
        ),
        f"{app}_service": dict(type="str", default=service),
        f"{app}_service_port": dict(type="int", default=port),
    }


def fail_as_documentation_stub(name: str, argument_spec: dict[str, Any]) -> None:
    """What a module file that only documents an action plugin does when run (on a host): refuse.

    The AnsibleModule is made with the spec (validate-modules reads it from that call); whatever
    the arguments, even missing or wrong ones, the task fails saying why this file must not run.
    """
    from ansible.module_utils.basic import AnsibleModule

    refusal = (
        f"haw.icc.{name} runs as an action plugin on the controller; "
        "this module file only documents it and must not be executed on a host"
    )

    class Refusing(AnsibleModule):
        def fail_json(self, msg: str, **_result: Any) -> None:
            super().fail_json(msg=refusal)

    Refusing(argument_spec=argument_spec, supports_check_mode=True).fail_json(msg=refusal)
