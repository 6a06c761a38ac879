# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""Filters that expose TGI's command line (plugins/module_utils/tgi_settings.py) to templates.

Documentation: tgi_container.yml and tgi_settings_errors.yml beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import (
    TgiSettingsError,
    validate_tgi_settings,
)
from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import (
    tgi_container as _tgi_container,
)


def tgi_container(settings, catalog=None):
    """The TGI container's args and env; every problem of the settings fails the task."""
    try:
        return _tgi_container(settings, catalog)
    except TgiSettingsError as error:
        raise AnsibleFilterError(str(error)) from error


def tgi_settings_errors(settings, catalog=None):
    """Every problem of the settings (and of the catalog), as a list of messages."""
    return validate_tgi_settings(settings, catalog)


class FilterModule:
    def filters(self):
        return {
            "tgi_container": tgi_container,
            "tgi_settings_errors": tgi_settings_errors,
        }
