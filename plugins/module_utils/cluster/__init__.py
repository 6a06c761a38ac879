# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The Kubernetes API: the connection kubernetes.core's client makes (connection), the one layer
every request goes through, with its one error type and the API server's clock (api),
server-side apply (apply), the namespace Lease (lease), RBAC rights (rights), kubeconfig merging
(kubeconfig) and what Kubernetes accepts as values (values).

Knows nothing of TGI, GPUs or the collection's roles. Imports only kubernetes.core, the kubernetes
library and the standard library: it is the bottom of the arrows.
"""
