# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""The TGI pod of a set of settings (plugins/module_utils/workload/tgi_workload.py), for templates.

Documentation: tgi_workload.yml beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    tgi_workload as _tgi_workload,
)


def tgi_workload(settings, catalog=None):
    """The TGI pod; every problem of the settings fails the task."""
    try:
        return _tgi_workload(settings, catalog or None)
    except TgiSettingsError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self):
        return {"tgi_workload": tgi_workload}
