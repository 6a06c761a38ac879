# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The TGI server a module works on, as the tgi_server role deploys it: its Deployment (and
Service) and its container.

A module lists it after haw.icc.kubernetes and kubernetes.core.k8s_auth_options; its
ARGUMENT_SPEC has the same two options.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of TGI's Deployment, which its Service shares (the C(tgi_server) role's
        C(tgi_name)); its pods carry the labels C(app.kubernetes.io/name=tgi) and
        C(app.kubernetes.io/instance=<name>).
    type: str
    default: tgi
  container:
    description: Name of TGI's container in the Deployment's pod template.
    type: str
    default: tgi
"""
