# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The one way the collection connects to a cluster: kubernetes.core's client, explained.

Every action plugin that talks to the cluster (plugin_utils/kubernetes_action.py) gets its client
from kubernetes.core's `get_api_client`, with its auth options and its K8S_AUTH_* environment
variables, so they connect exactly like
kubernetes.core.k8s does in the roles, and send their requests through the ClusterApi made of
it (module_utils/cluster/api.py). What this file adds is words: which credentials are in use
and which are set but ignored (`credentials`), and a message a student can act on when they do
not work (`ConnectionProblem`), instead of "No configuration found".

Where the credentials come from, in kubernetes.core's own order:
1. a host with a token (or user and password, or a client certificate and key), from the
   options or K8S_AUTH_HOST, K8S_AUTH_API_KEY...: nothing else is read;
2. a kubeconfig (the option, which the playbooks set from icc_kubeconfig, or
   K8S_AUTH_KUBECONFIG) or a context (icc_context, K8S_AUTH_CONTEXT): that kubeconfig, or
   without one $KUBECONFIG, else ~/.kube/config;
3. inside a pod (AWX, a CI job): the pod's service account;
4. $KUBECONFIG, else ~/.kube/config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ClusterApi
from ansible_collections.haw.icc.plugins.module_utils.cluster.errors import (
    ApiError,
    NoAnswer,
    translated,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    import yaml
    from kubernetes import __version__ as kubernetes_version
    from kubernetes import config as k8s_config
    from kubernetes.config import incluster_config
except ImportError:  # reported by api_client(), whose client import fails
    pass

DEFAULT_KUBECONFIG = "~/.kube/config"
# Environment variables that hold each option besides K8S_AUTH_<OPTION> (kubernetes.core's).
ENV_ALIASES = {
    "validate_certs": ("K8S_AUTH_VERIFY_SSL",),
    "ca_cert": ("K8S_AUTH_SSL_CA_CERT",),
    "client_cert": ("K8S_AUTH_CERT_FILE",),
    "client_key": ("K8S_AUTH_KEY_FILE",),
}
CONNECTION_HINT = (
    "On the ICC: download your kubeconfig from the ICC login page and export "
    "KUBECONFIG=<file> (or set icc_kubeconfig in the inventory); for the sandbox: make "
    "sandbox-up."
)


class ConnectionProblem(Exception):
    """The cluster cannot be used: why, in words, and where the credentials came from."""


# --- where the credentials come from -----------------------------------------------------------


@dataclass
class Credentials:
    """Which credentials kubernetes.core will use, said truthfully."""

    source: str  # for example "icc_kubeconfig /home/s/.kube/icc.yaml"
    kubeconfig: str | None = None  # the file(s) read, when a kubeconfig is read
    context: str | None = None
    ignored: list[str] = field(default_factory=list)  # set, but not used, and why
    server: str | None = None  # once connected: the API server's address and version
    version: str | None = None

    def describe(self) -> str:
        text = self.source + (f", context {self.context}" if self.context else "")
        if self.ignored:
            text += " (" + "; ".join(self.ignored) + ")"
        return text


def _option(params: dict[str, Any], environ: dict[str, str], name: str) -> tuple[Any, str]:
    """(value, where it came from) of an auth option: the option, else its K8S_AUTH_* variable."""
    if params.get(name) not in (None, ""):
        label = "icc_kubeconfig" if name == "kubeconfig" else f"the {name} option"
        if name == "context":
            label = "icc_context"
        return params[name], label
    for variable in (f"K8S_AUTH_{name.upper()}", *ENV_ALIASES.get(name, ())):
        if environ.get(variable):
            return environ[variable], variable
    return None, ""


def in_cluster(environ: dict[str, str]) -> bool:
    """Whether this runs inside a pod with a service account, as the kubernetes library sees it."""
    return bool(
        environ.get("KUBERNETES_SERVICE_HOST")
        and environ.get("KUBERNETES_SERVICE_PORT")
        and os.path.isfile(incluster_config.SERVICE_TOKEN_FILENAME)
    )


def credentials(params: dict[str, Any], environ: dict[str, str]) -> Credentials:
    """Where kubernetes.core takes the credentials from for these options and environment."""
    got = {name: _option(params, environ, name) for name in AUTH_ARG_SPEC}
    host, host_from = got["host"]
    pairs = (("api_key",), ("username", "password"), ("client_cert", "client_key"))
    for pair in pairs:
        if host and all(got[name][0] for name in pair):
            labels = [host_from, *(got[name][1] for name in pair)]
            names = " and ".join(labels)
            if all(label.startswith("the ") for label in labels):  # all options, no variables
                names = "the " + " and ".join(("host", *pair)) + " options"
            ignored = [
                f"{got[name][1]} is set but ignored while they are"
                for name in ("kubeconfig", "context")
                if got[name][0]
            ]
            if environ.get("KUBECONFIG"):
                ignored.append("KUBECONFIG is set but ignored while they are")
            return Credentials(names, ignored=ignored)
    kubeconfig, kubeconfig_from = got["kubeconfig"]
    context, _ = got["context"]
    ignored = []
    if isinstance(kubeconfig, dict):
        return Credentials(f"the kubeconfig given as a mapping ({kubeconfig_from})", None, context)
    if kubeconfig:
        if environ.get("KUBECONFIG"):
            ignored.append(f"KUBECONFIG is set but {kubeconfig_from} wins")
        return Credentials(
            f"{kubeconfig_from} {kubeconfig}", os.path.expanduser(str(kubeconfig)), context, ignored
        )
    if not context and in_cluster(environ):
        if environ.get("KUBECONFIG"):
            ignored.append("KUBECONFIG is set but the pod's service account wins")
        return Credentials("the pod's service account (in-cluster)", ignored=ignored)
    if environ.get("KUBECONFIG"):
        return Credentials(f"KUBECONFIG {environ['KUBECONFIG']}", environ["KUBECONFIG"], context)
    return Credentials(
        f"the default kubeconfig {DEFAULT_KUBECONFIG}",
        os.path.expanduser(DEFAULT_KUBECONFIG),
        context,
    )


def _kubeconfig_problem(found: Credentials) -> str | None:
    """Why the kubeconfig `found` names cannot be used, before the library tries it."""
    paths = [path for path in (found.kubeconfig or "").split(os.pathsep) if path]
    existing = [os.path.expanduser(p) for p in paths if os.path.isfile(os.path.expanduser(p))]
    if not existing:
        return f"no kubeconfig: {found.describe()} does not exist. {CONNECTION_HINT}"
    for path in existing:
        try:
            with open(path, encoding="utf-8") as stream:
                loaded = yaml.safe_load(stream)
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
            where = getattr(error, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            return f"the kubeconfig {path} cannot be read{line}: {str(error).splitlines()[0]}"
        if not isinstance(loaded, dict) or not loaded.get("contexts"):
            return f"the kubeconfig {path} is not a kubeconfig (it has no contexts)"
    if found.context:
        contexts, _current = k8s_config.list_kube_config_contexts(config_file=existing[0])
        names = [entry.get("name") for entry in contexts or []]
        if found.context not in names:
            return (
                f"the context {found.context!r} is not in the kubeconfig {existing[0]}; it has "
                f"{', '.join(map(str, names)) or 'no contexts'}"
            )
    return None


# --- connecting ----------------------------------------------------------------------------------


def auth_options(args: dict[str, Any]) -> dict[str, Any]:
    """The auth options of a task's arguments that are set (others fall back to K8S_AUTH_*)."""
    return {
        name: value for name, value in args.items() if name in AUTH_ARG_SPEC and value is not None
    }


def api_client(auth: dict[str, Any], probe: bool = True) -> tuple[ClusterApi, Credentials]:
    """(the request layer over kubernetes.core's ApiClient, where its credentials come from),
    for the task's auth options (`auth`).

    Raises ConnectionProblem with a readable reason. With `probe` the server is asked for its
    version on the way (Credentials.version), so an unreachable or refusing cluster is found
    here; without, the first request finds it out and raises the same ConnectionProblem: a task
    after the run's cluster check saves a request.
    """
    params = dict(auth)
    found = credentials(params, dict(os.environ))
    if found.kubeconfig is not None:
        problem = _kubeconfig_problem(found)
        if problem:
            raise ConnectionProblem(problem)
    server = "the cluster"
    try:
        # kubernetes.core's client reads the server's discovery: its errors are read alike.
        with translated(None):
            client = get_api_client(**params)
        if not hasattr(client.client.client, "param_serialize"):
            raise ConnectionProblem(
                f"the kubernetes Python library {kubernetes_version} on this machine is too old "
                "for haw.icc: it needs 37 or newer (pip install 'kubernetes>=37,<38')"
            )
        cluster = ClusterApi(
            client.client.client,
            first_contact=lambda error: connection_problem(error, found, cluster.server),
        )
        server = cluster.server
        if probe:
            found.version = cluster.version().get("gitVersion")
        # Read again: with an empty K8S_AUTH_HOST exported, the host is filled in only by then.
        found.server = server = cluster.server
    except (CoreException, k8s_config.ConfigException) as error:
        raise ConnectionProblem(f"cannot use {found.describe()}: {error}") from error
    except ApiError as error:
        raise connection_problem(error, found, server) from error
    return cluster, found


def connection_problem(error: ApiError, found: Credentials, server: str) -> ConnectionProblem:
    """What to tell the user when the cluster at `server` did not answer or refused."""
    if isinstance(error, NoAnswer):
        # The connection pool knows the address that failed even before the client existed.
        where = error.server if error.server != "the cluster" else server
        return ConnectionProblem(
            f"cannot reach the cluster at {where} ({found.describe()}): {error.said}. Is the API "
            "server running, and is this the right address (check the kubeconfig, the context "
            "and your network, VPN)? Run the playbook again once it answers."
        )
    if error.status in (401, 403):
        return ConnectionProblem(
            f"the cluster at {server} refused the credentials ({found.describe()}): {error.said}"
        )
    return ConnectionProblem(f"the cluster at {server} answered {error.status}: {error.said}")
