# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The idle proxy of a namespace (icc_idle_minutes): it stands in front of the inference server
(TGI or vLLM), forwards every request to it, and after the idle time scales the server's
Deployment to 0 replicas, which gives its GPUs back; the next request that needs the model
scales it back to 1, is held until the server is ready, and is then answered.

It runs in a stock Python image (standard library only, nothing installed at start), with its
own ServiceAccount that may get and patch exactly that one Deployment, get its Service's
Endpoints (a woken server counts once the Service routes to it) and list the namespace's pods
(their conditions say Ready, or that no node has the GPUs free). When it puts the server to
sleep it writes when, and the last request, into the Deployment's annotations
(haw.icc/asleep-since, haw.icc/last-request), where status.yml reads them with the student's
rights. Whoever else scales the Deployment (test.yml waking it, a person with kubectl) is
noticed within SYNC_SECONDS.

What wakes the server, and why: only requests that need the model - every POST (generation,
chat, completions, tokenize) - count as use and wake a sleeping server. Everything else (health
checks, the model list, /info, /version, /metrics: what Open WebUI, probes and monitors ask over
and over) is forwarded while it is awake without counting as use, so it never keeps it awake;
while it sleeps it is answered here (/v1/models names the model the Deployment will serve,
anything else gets 503 saying it sleeps) and never wakes it. While someone else wakes it, such a
request waits up to QUIET_WAIT_SECONDS for the server. The idle time does not run while a deploy
or a switch rolls the server out (a model download is not idleness).

A request that would wake the server waits for it (up to WAKE_TIMEOUT_SECONDS, the start-up
budget the probes have) unless it says it cannot (`Prefer: wait=0`); then it gets 503 with
`Retry-After` and "waking up, about N s". When the woken pod cannot be scheduled because no node
has the GPUs free, or not be created because of the namespace's quota, the answer says so, the
server goes back to sleep (a pending pod would take GPUs later, unasked) and the reason is noted
on the Deployment (haw.icc/wake-problem) for status.yml. GET /idle-proxy/status gives the state
as JSON.

Settings (environment): UPSTREAM (http://host:port of the server's Service), SERVICE (that
Service's name, whose Endpoints say when a woken server is reachable; UPSTREAM's host), DEPLOYMENT,
SERVED_MODEL (what /v1/models names while asleep when the Deployment cannot be read),
NAMESPACE (else the ServiceAccount's), IDLE_SECONDS, WAKE_TIMEOUT_SECONDS, WAKE_ESTIMATE_SECONDS
(what "about N s" says before the first wake was measured), PORT (8080), KUBERNETES_API (else
the in-cluster address), POLL_SECONDS (1), SYNC_SECONDS (10), UNSCHEDULABLE_GRACE_SECONDS (60:
how long a woken pod may wait for GPUs before the server goes back to sleep), NOTE_SECONDS (60: how
often the last request and the tokens generated are noted on the Deployment while in use).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ASLEEP_SINCE, LAST_REQUEST = "haw.icc/asleep-since", "haw.icc/last-request"
WAKE_PROBLEM, GENERATED_TOKENS = "haw.icc/wake-problem", "haw.icc/generated-tokens"
# The token counts of OpenAI's usage (completion_tokens) and of TGI's own API's details
# (generated_tokens); the last one of an answer is its total (a stream ends with it).
TOKEN_COUNT = re.compile(rb'"(?:completion_tokens|generated_tokens)"\s*:\s*(\d+)')
# How long a request that does not wake the server waits for a wake under way.
QUIET_WAIT_SECONDS = 30
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
CHUNK = 16384
CONNECT_ATTEMPTS = 5
LOOK_SECONDS = 2.0


def now_iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


class Kubernetes:
    """The few API calls the proxy makes, with its ServiceAccount's token."""

    def __init__(
        self,
        api: str,
        token: str | None,
        ca_file: str | None,
        namespace: str,
        token_file: str | None = None,
    ):
        self.api, self.token, self.namespace = api.rstrip("/"), token, namespace
        # Read again on every request: the kubelet renews a projected token on the file.
        self.token_file = token_file
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def request(self, method: str, path: str, body: dict | None = None, patch: bool = False):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            kind = "application/merge-patch+json" if patch else "application/json"
            request.add_header("Content-Type", kind)
        token = self.token
        if self.token_file:
            with open(self.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context)
        )
        with opener.open(request, timeout=15) as answer:
            return json.loads(answer.read() or b"null")

    def _apps(self, name: str) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}"

    def replicas(self, deployment: str) -> int:
        found = self.request("GET", self._apps(deployment))
        return int((found.get("spec") or {}).get("replicas") or 0)

    def settled(self, deployment: str) -> bool:
        """Whether the Deployment's newest revision is rolled out: not a server that a deploy
        or a switch is starting (or downloading a model for), which is not idle."""
        found = self.request("GET", self._apps(deployment))
        spec, status = found.get("spec") or {}, found.get("status") or {}
        wanted = int(spec.get("replicas") or 0)
        return int(status.get("observedGeneration") or 0) >= int(
            (found.get("metadata") or {}).get("generation") or 0
        ) and all(
            int(status.get(key) or 0) == wanted
            for key in ("replicas", "updatedReplicas", "availableReplicas")
        )

    def scale(self, deployment: str, replicas: int, annotations: dict | None = None) -> None:
        """Sets the replicas and, in the same write, the annotations (None removes one)."""
        body: dict = {"spec": {"replicas": replicas}}
        if annotations:
            body["metadata"] = {"annotations": annotations}
        self.request("PATCH", self._apps(deployment), body, patch=True)

    def annotate(self, deployment: str, annotations: dict) -> None:
        """Notes on the Deployment (its metadata: no new revision, no restart)."""
        body = {"metadata": {"annotations": annotations}}
        self.request("PATCH", self._apps(deployment), body, patch=True)

    def annotations(self, deployment: str) -> dict:
        found = self.request("GET", self._apps(deployment))
        return (found.get("metadata") or {}).get("annotations") or {}

    def pods(self, selector: str) -> list[dict]:
        query = urllib.parse.urlencode({"labelSelector": selector})
        path = f"/api/v1/namespaces/{self.namespace}/pods?{query}"
        return self.request("GET", path).get("items") or []

    def endpoints_ready(self, service: str) -> bool:
        """Whether the Service has a ready address: the woken pod is Ready, and the Service
        routes to it."""
        path = f"/api/v1/namespaces/{self.namespace}/endpoints/{service}"
        try:
            found = self.request("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return any(subset.get("addresses") for subset in found.get("subsets") or [])

    def replica_failure(self, deployment: str) -> str | None:
        """Why the Deployment's pod cannot be created (its ReplicaFailure condition: a quota
        exceeded), or None."""
        found = self.request("GET", self._apps(deployment))
        for condition in (found.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                return condition.get("message") or condition.get("reason") or "ReplicaFailure"
        return None

    def served_model(self, deployment: str) -> str | None:
        """The model the Deployment's server is started with: vLLM's --served-model-name or
        first argument, TGI's --model-id."""
        found = self.request("GET", self._apps(deployment))
        containers = (((found.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or [{}]
        args = list(containers[0].get("args") or [])
        for flag in ("--served-model-name", "--model-id"):
            if flag in args[:-1]:
                return args[args.index(flag) + 1]
        return args[0] if args and not args[0].startswith("-") else None

    def selector(self, deployment: str) -> str:
        found = self.request("GET", self._apps(deployment))
        labels = ((found.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


class IdleProxy:
    """The state: awake or asleep, the last use, requests in flight, the wakes."""

    def __init__(self, kube: Kubernetes, settings: dict) -> None:
        self.kube, self.settings = kube, settings
        self.lock = threading.Condition()
        self.in_flight = 0
        self.last_use = time.time()
        self.asleep_since: float | None = None
        self.waking_since: float | None = None
        self.wake_problem: str | None = None
        self.wakes = 0
        self.requests = 0
        self.last_wake_seconds: float | None = None
        self.looked = 0.0
        self.generated_tokens = 0
        self.noted: tuple = ()  # (last use, tokens) as last written on the Deployment
        # Scale writes one at a time, in the order decided; and when this proxy last wrote.
        self.scale_lock = threading.Lock()
        self.scaled_at = 0.0
        self.stop = threading.Event()

    # -- state ----------------------------------------------------------------------------------

    def status(self) -> dict:
        with self.lock:
            state = "waking" if self.waking_since else "asleep" if self.asleep_since else "awake"
            return {
                "state": state,
                "asleep_since": now_iso(self.asleep_since) if self.asleep_since else None,
                "last_request": now_iso(self.last_use),
                "idle_seconds": self.settings["idle_seconds"],
                "requests": self.requests,
                "wakes": self.wakes,
                "generated_tokens": self.generated_tokens,
                "last_wake_seconds": self.last_wake_seconds,
                "problem": self.wake_problem,
            }

    def model_list(self) -> bytes:
        """/v1/models while the server sleeps, so that Open WebUI offers a model whose chat wakes
        it: the model its Deployment serves once woken (read from its arguments, so a model
        switched while it sleeps is the new one), else SERVED_MODEL."""
        try:
            served = self.kube.served_model(self.settings["deployment"])
        except (OSError, urllib.error.URLError, ValueError) as error:
            log(f"cannot read {self.settings['deployment']}'s model: {error}")
            served = None
        model = {
            "id": served or self.settings["served_model"],
            "object": "model",
            "owned_by": "haw.icc",
        }
        return json.dumps({"object": "list", "data": [model]}).encode()

    def estimate(self) -> int:
        known = self.last_wake_seconds or self.settings["wake_estimate_seconds"]
        started = self.waking_since
        left = known - (time.time() - started) if started else known
        return max(round(left), 1)

    def start_use(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.requests += 1
            self.last_use = time.time()

    def end_use(self, tokens: int = 0) -> None:
        with self.lock:
            self.in_flight -= 1
            self.last_use = time.time()
            self.generated_tokens += tokens

    def note_use(self) -> None:
        """Writes the last request and the tokens generated on the Deployment (for status.yml
        and the course page), when they changed since the last note."""
        with self.lock:
            now = (self.last_use, self.generated_tokens)
            if now == self.noted or self.asleep_since is not None:
                return
        notes = {LAST_REQUEST: now_iso(now[0]), GENERATED_TOKENS: str(now[1])}
        try:
            self.kube.annotate(self.settings["deployment"], notes)
        except (OSError, urllib.error.URLError, ValueError) as error:
            log(f"cannot note the use on {self.settings['deployment']}: {error}")
            return
        with self.lock:
            self.noted = now

    # -- sleeping and waking ----------------------------------------------------------------------

    def _due(self) -> bool:
        """Whether the server has been idle long enough to sleep (call with the lock held)."""
        return (
            self.asleep_since is None
            and self.waking_since is None
            and self.in_flight == 0
            and time.time() - self.last_use >= self.settings["idle_seconds"]
        )

    def watch_idle(self) -> None:
        """Puts the server to sleep once nothing used it for the idle time, follows replicas
        that someone else changed, and notes the use on the Deployment."""
        poll, synced, noted = self.settings["poll_seconds"], time.time(), time.time()
        while not self.stop.wait(poll):
            if time.time() - synced >= self.settings["sync_seconds"]:
                synced = time.time()
                self.follow_replicas()
            if time.time() - noted >= self.settings["note_seconds"]:
                noted = time.time()
                self.note_use()
            with self.lock:
                due = self._due()
            if due:
                self.sleep()

    def may_look(self) -> bool:
        """At most one look at the replicas per LOOK_SECONDS for requests while asleep."""
        with self.lock:
            if time.time() - self.looked < LOOK_SECONDS:
                return False
            self.looked = time.time()
            return True

    def follow_replicas(self) -> None:
        """Asleep when someone else scaled the Deployment to 0; when someone else woke it (test.yml,
        kubectl), waking: the proxy watches it become ready without scaling it itself."""
        read_at = time.time()
        try:
            replicas = self.kube.replicas(self.settings["deployment"])
        except (OSError, urllib.error.URLError, ValueError) as error:
            log(f"cannot read {self.settings['deployment']}'s replicas: {error}")
            return
        with self.lock:
            if self.waking_since is not None or read_at < self.scaled_at:
                return  # this proxy is scaling it, or the read is older than its last write
            if replicas == 0 and self.asleep_since is None:
                self.asleep_since = time.time()
                log(f"{self.settings['deployment']} was scaled to 0 by someone else: asleep")
                return
            if replicas == 0 or self.asleep_since is None:
                return
            self.waking_since, self.wake_problem = time.time(), None
        log(f"{self.settings['deployment']} was woken by someone else")
        threading.Thread(target=self._wake, kwargs={"scale": False}, daemon=True).start()

    def sleep(self) -> None:
        """Scales the server to 0 if it is still due, and not while a deploy or a switch rolls
        it out. Requests that come meanwhile see it asleep and wake it after this write."""
        deployment = self.settings["deployment"]
        try:
            settled = self.kube.settled(deployment)
        except (OSError, urllib.error.URLError, ValueError) as error:
            log(f"cannot read {deployment}: {error}")
            return
        with self.scale_lock:
            with self.lock:
                if not settled:  # starting, or downloading a model: in use, not idle
                    self.last_use = time.time()
                if not self._due():
                    return
                moment = self.asleep_since = time.time()
                last, tokens = self.last_use, self.generated_tokens
            notes = {
                ASLEEP_SINCE: now_iso(moment),
                LAST_REQUEST: now_iso(last),
                GENERATED_TOKENS: str(tokens),
                WAKE_PROBLEM: None,
            }
            try:
                self.kube.scale(deployment, 0, notes)
            except (OSError, urllib.error.URLError, ValueError) as error:
                log(f"cannot scale {deployment} to 0: {error}")
                with self.lock:
                    if self.waking_since is None:
                        self.asleep_since = None
                return
            self.scaled_at = time.time()
        log(f"asleep: {deployment} scaled to 0, its GPUs given back")

    def wake_async(self) -> None:
        """Starts waking the server (once, whoever asks first) without waiting for it."""
        with self.lock:
            if self.asleep_since is None or self.waking_since is not None:
                return
            self.waking_since, self.wake_problem = time.time(), None
        threading.Thread(target=self._wake, daemon=True).start()

    def wake(self) -> str | None:
        """Wakes the server and waits until it is ready: None, or why it is not (at once when
        no node has its GPUs free: the request need not hang while the wake goes on)."""
        self.wake_async()
        return self.wait_awake(self.settings["wake_timeout_seconds"], until_problem=True)

    def wait_awake(self, seconds: float, until_problem: bool = False) -> str | None:
        """Waits while the server wakes: None once awake, else why not (so far)."""
        deadline = time.time() + seconds
        with self.lock:
            while (
                self.waking_since is not None
                and not (until_problem and self.wake_problem)
                and time.time() < deadline
            ):
                self.lock.wait(timeout=1)
            if self.asleep_since is None and self.waking_since is None:
                return None
            return self.wake_problem or "the server is still waking"

    def _wake(self, scale: bool = True) -> None:
        """Scales the server to 1 (unless someone else did) and waits until it is ready; when it
        does not become so, back to 0 with the reason noted on the Deployment."""
        began = time.time()
        deployment = self.settings["deployment"]
        problem = None
        try:
            if scale:
                with self.scale_lock:  # after a sleep's write that is still under way
                    self.kube.scale(deployment, 1, {ASLEEP_SINCE: None, WAKE_PROBLEM: None})
                    self.scaled_at = time.time()
                log(f"waking: {deployment} scaled to 1")
            selector = self.kube.selector(deployment)
            problem = self._until_ready(deployment, selector, began)
        except (OSError, urllib.error.URLError, ValueError) as error:
            problem = f"cannot wake {deployment}: {error}"
        if problem is not None:  # back to sleep: a pod left Pending would take GPUs unasked
            log(f"did not wake: {problem}")
            try:
                with self.scale_lock:
                    moment = now_iso(time.time())
                    notes = {ASLEEP_SINCE: moment, WAKE_PROBLEM: f"{moment}: {problem}"}
                    self.kube.scale(deployment, 0, notes)
                    self.scaled_at = time.time()
            except (OSError, urllib.error.URLError, ValueError) as error:
                log(f"cannot scale {deployment} back to 0: {error}")
        with self.lock:
            self.waking_since = None
            if problem is None:
                self.asleep_since = None
                self.wakes += 1
                self.last_wake_seconds = round(time.time() - began, 1)
                self.last_use = time.time()
                log(f"awake after {self.last_wake_seconds} s")
            else:
                self.asleep_since = self.asleep_since or time.time()
            self.wake_problem = problem
            self.lock.notify_all()

    def _until_ready(self, deployment: str, selector: str, began: float) -> str | None:
        """None once the woken server is ready and routed to; else why not, as soon as it is
        clear: its pod may not be created (a quota), it crashes at start, no node had the GPUs
        free for UNSCHEDULABLE_GRACE_SECONDS, or the start-up budget ran out."""
        deadline = began + self.settings["wake_timeout_seconds"]
        unschedulable_since = None
        while time.time() < deadline and not self.stop.is_set():
            refused = self.kube.replica_failure(deployment)
            if refused:
                return f"its pod cannot be created ({refused})"
            listed = self.kube.pods(selector)
            # An old pod still terminating holds its GPUs (Recreate): not a lack of free ones.
            terminating = any(p["metadata"].get("deletionTimestamp") for p in listed)
            waiting_for_gpus = None
            for pod in (p for p in listed if not p["metadata"].get("deletionTimestamp")):
                status = pod.get("status") or {}
                conditions = {c.get("type"): c for c in status.get("conditions") or []}
                if (conditions.get("Ready") or {}).get("status") == "True":
                    if self.kube.endpoints_ready(self.settings["service"]):
                        return None
                    continue  # Ready, but the Service does not route to it yet
                crashed = crash_of(status)
                if crashed:
                    return f"the server does not start ({crashed})"
                scheduled = conditions.get("PodScheduled") or {}
                if scheduled.get("reason") == "Unschedulable" and not terminating:
                    waiting_for_gpus = scheduled.get("message") or "unschedulable"
            with self.lock:
                if waiting_for_gpus is None:
                    unschedulable_since, self.wake_problem = None, None
                else:
                    unschedulable_since = unschedulable_since or time.time()
                    self.wake_problem = (
                        f"no node has the GPUs free for this server right now ({waiting_for_gpus});"
                        " ask again in a few minutes"
                    )
                    self.lock.notify_all()
                    if time.time() - unschedulable_since >= self.settings["unschedulable_grace"]:
                        return self.wake_problem
            time.sleep(self.settings["poll_seconds"])
        return None if self.stop.is_set() else "the server did not become ready in time"


def crash_of(status: dict) -> str | None:
    """Why a container of the pod ended and restarts (a crash loop), or None."""
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        ended = (container.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") == "CrashLoopBackOff" or (container.get("restartCount") and ended):
            said = (ended.get("message") or "").strip().splitlines()[-1:] or [""]
            reason = ended.get("reason") or waiting.get("reason") or "restarted"
            return f"{reason}: {said[0][:200]}".rstrip(": ")
    return None


def log(message: str) -> None:
    print(f"{now_iso(time.time())} idle-proxy: {message}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:  # a browser's CORS preflight
        self._handle("OPTIONS")

    @property
    def proxy(self) -> IdleProxy:
        return self.server.proxy  # type: ignore[attr-defined]

    def _handle(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        if path == "/idle-proxy/status":
            return self._json(200, self.proxy.status())
        if method != "POST":  # only generation (a POST) is use, and wakes the server
            return self._quiet(method, body)
        self.proxy.start_use()
        tokens = 0
        try:
            if self.proxy.status()["state"] != "awake":
                if "wait=0" in (self.headers.get("Prefer") or ""):
                    self.proxy.wake_async()
                    return self._waking()
                problem = self.proxy.wake()
                if problem:
                    return self._json(
                        503, {"error": f"the server is asleep and did not wake: {problem}"}
                    )
            tokens = self._forward(method, body)
        finally:
            self.proxy.end_use(tokens)
        return None

    def _body(self) -> bytes:
        """The request's body, from Content-Length or chunked (forwarded with a length)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _quiet(self, method: str, body: bytes) -> None:
        """Anything but generation - health checks, the model list, metrics: forwarded while
        awake, answered here otherwise, never counted as use and never waking the server."""
        state = self.proxy.status()
        if state["state"] == "asleep" and self.proxy.may_look():
            self.proxy.follow_replicas()  # woken by someone else (test.yml) a moment ago?
            state = self.proxy.status()
        if state["state"] == "waking" and not self.path.startswith("/v1/models"):
            self.proxy.wait_awake(QUIET_WAIT_SECONDS)  # it may be ready in a moment
            state = self.proxy.status()
        if state["state"] == "awake":
            self._forward(method, body)
            return None
        if self.path.startswith("/v1/models"):
            return self._raw(200, self.proxy.model_list(), "application/json")
        message = (
            f"the server is {state['state']} (idle since {state['asleep_since']}); the next "
            "generation request wakes it"
        )
        return self._json(503, {"error": message, "idle_proxy": state})

    def _waking(self) -> None:
        seconds = self.proxy.estimate()
        self.send_response(503)
        body = json.dumps({"error": f"waking up, about {seconds} s", "retry_after": seconds})
        self.send_header("Retry-After", str(seconds))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def _forward(self, method: str, body: bytes) -> int:
        """Sends the request on and streams the answer back as it comes; the tokens the answer
        says it generated (0 when it says nothing)."""
        upstream = urllib.parse.urlsplit(self.proxy.settings["upstream"])
        connection = http.client.HTTPConnection(
            upstream.hostname,
            upstream.port or 80,
            timeout=self.proxy.settings["wake_timeout_seconds"],
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                connection.request(method, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                break
            except ConnectionError as error:  # refused, reset, broken pipe
                # Just woken: the Endpoints route to it, the node's rules may follow a moment
                # later.
                connection.close()
                if attempt + 1 == CONNECT_ATTEMPTS:
                    self._json(502, {"error": f"the server did not answer: {error}"})
                    return 0
                time.sleep(1)
            except OSError as error:
                connection.close()
                self._json(502, {"error": f"the server did not answer: {error}"})
                return 0
        try:
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            if method == "HEAD" or answer.status in (204, 304) or answer.status < 200:
                self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
                self.end_headers()
                return 0
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            tokens, seen = 0, b""
            while True:
                piece = answer.read1(CHUNK)
                if not piece:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                if method == "POST":  # a count may straddle two pieces: keep a tail
                    seen = seen[-64:] + piece
                    counts = TOKEN_COUNT.findall(seen)
                    tokens = int(counts[-1]) if counts else tokens
            self.wfile.write(b"0\r\n\r\n")
        finally:
            connection.close()
        return tokens

    def _json(self, status: int, document: dict) -> None:
        self._raw(status, json.dumps(document).encode(), "application/json")

    def _raw(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def settings_from(environ: dict) -> dict:
    return {
        "upstream": environ["UPSTREAM"],
        "deployment": environ["DEPLOYMENT"],
        "served_model": environ.get("SERVED_MODEL") or "unknown",
        "service": environ.get("SERVICE") or urllib.parse.urlsplit(environ["UPSTREAM"]).hostname,
        "idle_seconds": float(environ["IDLE_SECONDS"]),
        "wake_timeout_seconds": float(environ.get("WAKE_TIMEOUT_SECONDS") or 900),
        "wake_estimate_seconds": float(environ.get("WAKE_ESTIMATE_SECONDS") or 60),
        "poll_seconds": float(environ.get("POLL_SECONDS") or 1),
        "sync_seconds": float(environ.get("SYNC_SECONDS") or 10),
        "note_seconds": float(environ.get("NOTE_SECONDS") or 60),
        "unschedulable_grace": float(environ.get("UNSCHEDULABLE_GRACE_SECONDS") or 60),
        "port": int(environ.get("PORT") or 8080),
    }


def kubernetes_from(environ: dict) -> Kubernetes:
    api = environ.get("KUBERNETES_API")
    token_file, ca_file = None, None
    if os.path.exists(f"{ACCOUNT}/token"):
        token_file, ca_file = f"{ACCOUNT}/token", f"{ACCOUNT}/ca.crt"
    if not api:
        host, port = environ["KUBERNETES_SERVICE_HOST"], environ["KUBERNETES_SERVICE_PORT"]
        api = f"https://{host}:{port}"
    namespace = environ.get("NAMESPACE")
    if not namespace:
        with open(f"{ACCOUNT}/namespace", encoding="utf-8") as handle:
            namespace = handle.read().strip()
    return Kubernetes(api, None, ca_file, namespace, token_file)


def serve(proxy: IdleProxy, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, proxy.settings["port"]), Handler)
    server.daemon_threads = True
    server.proxy = proxy  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=proxy.watch_idle, daemon=True).start()
    return server


def main() -> int:
    settings = settings_from(dict(os.environ))
    proxy = IdleProxy(kubernetes_from(dict(os.environ)), settings)
    try:
        if proxy.kube.replicas(settings["deployment"]) == 0:
            proxy.asleep_since = time.time()  # a restart while asleep stays asleep
        # The count goes on from the last note, through restarts of the proxy.
        noted = proxy.kube.annotations(settings["deployment"]).get(GENERATED_TOKENS) or "0"
        proxy.generated_tokens = int(noted) if noted.isdigit() else 0
    except (OSError, urllib.error.URLError, ValueError) as error:
        log(f"cannot read {settings['deployment']}: {error}")
    server = serve(proxy)
    log(f"listening on {settings['port']}, forwarding to {settings['upstream']}")
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    proxy.stop.set()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
