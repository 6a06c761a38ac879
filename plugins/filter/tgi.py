# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""The inference server's pod of a set of settings, for templates: TGI's
(plugins/module_utils/workload/tgi_workload.py) or vLLM's (vllm_workload.py beside it).

Documentation: tgi_workload.yml and vllm_workload.yml beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    tgi_workload as _tgi_workload,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.vllm_workload import (
    vllm_workload as _vllm_workload,
)


def tgi_workload(settings, catalog=None):
    """The TGI pod; every problem of the settings fails the task."""
    try:
        return _tgi_workload(settings, catalog or None)
    except TgiSettingsError as error:
        raise AnsibleFilterError(str(error)) from error


def vllm_workload(settings, catalog=None):
    """The vLLM pod from the same settings; every problem fails the task."""
    try:
        return _vllm_workload(settings, catalog or None)
    except TgiSettingsError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self):
        return {"tgi_workload": tgi_workload, "vllm_workload": vllm_workload}
