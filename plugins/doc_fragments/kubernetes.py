# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What every haw.icc module that talks to the Kubernetes API has in common: the namespace it
works in, where its client comes from and the action group it is in.

A module lists it after haw.icc.controller_action, then kubernetes.core.k8s_auth_options (the
connection options); its ARGUMENT_SPEC comes from module_utils/action_docs.py's
kubernetes_spec().
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  namespace:
    description:
      - The namespace the task works in, for example V(wabc123-default). On the ICC a student's
        own namespace is the login without C(inf), followed by C(-default).
    type: str
    required: true
attributes:
  action_group:
    description: The action groups the module is in, so that C(module_defaults) for a group
      reach it.
    support: full
    membership:
      - haw.icc.k8s
notes:
  - The client comes from kubernetes.core with its connection options and their E(K8S_AUTH_*)
    variables, in its order - a host with a token, else O(kubeconfig) or O(context) (without a
    kubeconfig E(KUBECONFIG), else C(~/.kube/config)), else the pod's service account, else
    E(KUBECONFIG) or C(~/.kube/config) - read on the controller. Every request goes through
    it, so kubernetes.core's auth, TLS and proxy settings hold alike.
  - The collection's action group C(group/haw.icc.k8s) holds this module together with
    kubernetes.core's modules, so one C(module_defaults) entry sets the connection for all of
    them.
requirements:
  - kubernetes >= 37 (Python library, on the controller)
"""
