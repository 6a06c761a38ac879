"""The stand-ins the node agent runs for Ready containers: TGI's API (icc_sandbox.tgi_standin)
with the model, token limits and API key the pod's launcher would have, vLLM's OpenAI server
(icc_sandbox.vllm_standin) with the served name, max model length and key `vllm serve` would
have, and Open WebUI's health check (icc_sandbox.webui_standin) where the real Open WebUI does
not run.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from icc_sandbox.container_spec import (
    DEFAULT_TOKEN_LIMITS,
    App,
    api_key_source,
    app_for,
    flag_value,
    launch_outcome,
    launcher_args,
    plain_env,
    serve_outcome,
    token_limits,
)
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.nodes import JSON, NodeSpec
from icc_sandbox.pod_simulation import PodView
from icc_sandbox.tgi_standin import TgiStandIn
from icc_sandbox.vllm_standin import VllmStandIn
from icc_sandbox.webui_standin import WebUiStandIn

log = logging.getLogger("node-agent")


@dataclass(frozen=True)
class ServedTgi:
    """What a Ready TGI container answers, and where: the settings of its stand-in."""

    host: str
    port: int
    model_id: str
    revision: str | None = None
    max_input_tokens: int = DEFAULT_TOKEN_LIMITS[0]
    max_total_tokens: int = DEFAULT_TOKEN_LIMITS[1]
    api_key: str | None = None  # a literal API_KEY value
    api_key_secret: tuple[str, str] | None = None  # (Secret, key) that API_KEY comes from


def ready_apps(pod: JSON, view: PodView, kind: str) -> Iterator[tuple[JSON, App]]:
    """(container, what it serves) of each container of `kind` with a port, once the pod is
    Ready (none before)."""
    if {"type": "Ready", "status": "True"} not in view.status["conditions"]:
        return
    for container in pod["spec"]["containers"]:
        app = app_for(container)
        if app.kind == kind and app.port is not None:
            yield container, app


def served_tgi(pod: JSON, node: NodeSpec, view: PodView) -> dict[str, ServedTgi]:
    """The stand-ins a pod should have, by container name: one per TGI container, once Ready."""
    served = {}
    for container, app in ready_apps(pod, view, "tgi"):
        args, env = launcher_args(container), plain_env(container)
        max_input, max_total = token_limits(container)
        literal_key, key_secret = api_key_source(container)
        served[container["name"]] = ServedTgi(
            host=view.status["podIP"],
            port=app.port,
            # A Ready TGI container is one whose launch succeeded: this is the model it loaded.
            model_id=launch_outcome(container, node).model_id,
            revision=flag_value(args, "--revision") or env.get("REVISION"),
            max_input_tokens=max_input,
            max_total_tokens=max_total,
            api_key=literal_key,
            api_key_secret=key_secret,
        )
    return served


@dataclass(frozen=True)
class ServedVllm:
    """What a Ready vLLM container answers, and where."""

    host: str
    port: int
    served_model_name: str
    model: str
    max_model_len: int
    api_key: str | None = None  # a literal --api-key or VLLM_API_KEY value
    api_key_secret: tuple[str, str] | None = None  # (Secret, key) VLLM_API_KEY comes from


def served_vllm(pod: JSON, node: NodeSpec, view: PodView) -> dict[str, ServedVllm]:
    """The vLLM stand-ins a pod should have, by container name, once Ready."""
    served = {}
    for container, app in ready_apps(pod, view, "vllm"):
        # A Ready vLLM container is one whose start-up succeeded: these are its settings.
        outcome = serve_outcome(container, node)
        literal_key, key_secret = api_key_source(container, "VLLM_API_KEY")
        served[container["name"]] = ServedVllm(
            host=view.status["podIP"],
            port=app.port,
            served_model_name=outcome.served_name,
            model=outcome.model,
            max_model_len=outcome.max_model_len,
            api_key=flag_value(container.get("args", []), "--api-key") or literal_key,
            api_key_secret=key_secret,
        )
    return served


@dataclass(frozen=True)
class ServedWebUi:
    """Where a Ready Open WebUI container answers its health check."""

    host: str
    port: int


def served_webui(pod: JSON, view: PodView, live: Iterable[str] = ()) -> dict[str, ServedWebUi]:
    """The Open WebUI health stand-ins a pod should have, by container name, once Ready (none
    for the containers in `live`, where the real Open WebUI answers)."""
    return {
        container["name"]: ServedWebUi(view.status["podIP"], app.port)
        for container, app in ready_apps(pod, view, "open-webui")
        if container["name"] not in live
    }


Served = ServedTgi | ServedVllm | ServedWebUi
StandIn = TgiStandIn | VllmStandIn | WebUiStandIn


def served_apps(
    pod: JSON, node: NodeSpec, view: PodView, live: Iterable[str] = ()
) -> dict[str, Served]:
    return (
        served_tgi(pod, node, view) | served_vllm(pod, node, view) | served_webui(pod, view, live)
    )


@dataclass
class _Serving:
    settings: Served
    # None when it could not start: not retried for these settings
    standin: StandIn | None


class StandIns:
    """The running stand-ins (TGI's API, Open WebUI's health), by (pod uid, container name): at
    most one per container. They listen on loopback or in `local_networks` (the pod network)."""

    def __init__(self, api: KubeApi, local_networks: Iterable[str] = ()) -> None:
        self.api = api
        self.local_networks = tuple(local_networks)
        self.running: dict[tuple[str, str], _Serving] = {}

    def serve(self, pod: JSON, wanted: dict[str, Served]) -> None:
        """Makes the pod's stand-ins match `wanted`: starts the missing ones, closes the rest."""
        uid = pod["metadata"]["uid"]
        for key in [k for k in self.running if k[0] == uid and k[1] not in wanted]:
            self._close(key)
        for container, settings in wanted.items():
            key = (uid, container)
            current = self.running.get(key)
            if current is not None and current.settings == settings:
                continue
            if current is not None:
                self._close(key)
            self.running[key] = _Serving(settings, self._start(pod, settings))

    def keep_only(self, pod_uids: set[str]) -> None:
        """Closes the stand-ins of pods that are gone."""
        for key in [k for k in self.running if k[0] not in pod_uids]:
            self._close(key)

    def close(self) -> None:
        self.keep_only(set())

    def _start(self, pod: JSON, settings: Served) -> StandIn | None:
        if isinstance(settings, ServedWebUi):
            return self._start_webui(pod, settings)
        where = _pod_name(pod)
        api_key = settings.api_key
        if settings.api_key_secret is not None:
            variable = "VLLM_API_KEY" if isinstance(settings, ServedVllm) else "API_KEY"
            api_key = self._secret_value(pod, variable, *settings.api_key_secret)
        try:
            if isinstance(settings, ServedVllm):
                engine, model = "vLLM", settings.served_model_name
                standin: TgiStandIn | VllmStandIn = VllmStandIn(
                    settings.served_model_name,
                    settings.max_model_len,
                    api_key,
                    settings.host,
                    settings.port,
                    model=settings.model,
                    local_networks=self.local_networks,
                ).start()
            else:
                engine, model = "TGI", settings.model_id
                standin = TgiStandIn(
                    settings.model_id,
                    api_key,
                    settings.host,
                    settings.port,
                    settings.max_input_tokens,
                    settings.max_total_tokens,
                    model_sha=settings.revision,
                    local_networks=self.local_networks,
                ).start()
        except (OSError, ValueError) as error:
            log.warning(
                "%s: no %s stand-in on %s:%d (%s); the pod's status is simulated all the same",
                where,
                "vLLM" if isinstance(settings, ServedVllm) else "TGI",
                settings.host,
                settings.port,
                error,
            )
            return None
        log.info("%s: %s stand-in serves %s at %s", where, engine, model, standin.url)
        return standin

    def _start_webui(self, pod: JSON, settings: ServedWebUi) -> WebUiStandIn | None:
        try:
            standin = WebUiStandIn(settings.host, settings.port, self.local_networks).start()
        except (OSError, ValueError) as error:
            log.warning(
                "%s: no Open WebUI health stand-in on %s:%d (%s)",
                _pod_name(pod),
                settings.host,
                settings.port,
                error,
            )
            return None
        log.info("%s: Open WebUI health stand-in at %s", _pod_name(pod), standin.url)
        return standin

    def _secret_value(self, pod: JSON, variable: str, secret: str, key: str) -> str | None:
        namespace = pod["metadata"]["namespace"]
        try:
            data = self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{secret}").get("data")
            return base64.b64decode((data or {})[key], validate=True).decode()
        except (ApiError, OSError, KeyError, binascii.Error, UnicodeDecodeError) as error:
            if isinstance(error, ApiError):
                detail = f"HTTP {error.status}"
            elif isinstance(error, KeyError):
                detail = "no such key"
            else:
                detail = str(error)
            log.warning(
                "%s: cannot read %s from key %r of Secret %s (%s); its stand-in accepts "
                "requests without an API key",
                _pod_name(pod),
                variable,
                key,
                secret,
                detail,
            )
            return None

    def busy(self, pod_uid: str, container: str, now: float, recent: float) -> bool:
        """Whether the container's engine stand-in has a request in flight or had one in the
        last `recent` seconds (what makes its simulated GPUs busy)."""
        serving = self.running.get((pod_uid, container))
        standin = serving.standin if serving is not None else None
        if not isinstance(standin, TgiStandIn | VllmStandIn):
            return False
        metrics = standin.metrics
        return metrics.in_flight > 0 or now - metrics.last_active < recent

    def _close(self, key: tuple[str, str]) -> None:
        serving = self.running.pop(key)
        if serving.standin is not None:
            url = serving.standin.url
            serving.standin.stop()  # closes the socket and joins the serving thread
            log.info("closed the stand-in at %s", url)


def _pod_name(pod: JSON) -> str:
    return f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}"
