"""The kubelet's side of `pods/portforward` over a WebSocket: the request, the channels, the
messages and the error a real node writes. Pure functions; the sockets are in icc_sandbox.kubelet.

What a client such as the Python client's `kubernetes.stream.portforward` (or kubectl 1.31 and
later, with WebSockets) reaches: the API server's `pods/portforward` (`GET` or `POST
/api/v1/namespaces/{ns}/pods/{pod}/portforward?ports=80,8080`, `Upgrade: websocket`) forwards
the upgrade to the node's kubelet and then pipes the bytes both ways, as for exec. Read in
Kubernetes v1.20.2 (Debian's source package `kubernetes` 1.20.5+really1.20.2, the one the
sandbox builds; `apt-get source kubernetes`):

- `pkg/registry/core/pod/strategy.go` (PortForwardLocation, streamParams): the API server asks
  the kubelet for `/portForward/{namespace}/{pod}` with the ports joined by commas in one query
  parameter named `port` (the API's `ports`).
- `pkg/kubelet/server/server.go` (getPortForward): routes `/portForward/{ns}/{pod}` and
  `/portForward/{ns}/{pod}/{uid}`, GET and POST. Options first (a 400 with their error), then the
  pod: not one of the node's pods is a 404 "pod does not exist", another uid a 404 "pod not
  found"; `pkg/kubelet/kubelet_pods.go` (GetPortForward): a pod whose sandbox does not run is
  `pod not found ("<name>_<namespace>")`, a plain error, so a 500
  (`pkg/kubelet/cri/streaming/errors.go`, WriteError).
- `pkg/kubelet/cri/streaming/portforward/websocket.go`: NewV4Options wants `port` on a
  WebSocket request (`query parameter "port" is required`, `... cannot be empty`, `unable to
  parse "x" as a port: <strconv's error>`, `port "0" must be > 0`); the subprotocols are "",
  `v4.channel.k8s.io` (binary) and `v4.base64.channel.k8s.io` (base64 text); there are two
  channels per port, in the order the ports were asked: data 2i (read and write) and error
  2i+1 (written by the kubelet only); first on each of them the kubelet writes the port as an
  unsigned 16-bit little-endian integer; then each port is forwarded on its own, and a failure
  is written on its error channel as `error forwarding port <port> to pod <pod>, uid <uid>:
  <error>`. When every port is done the connection closes. (`portforward.k8s.io` is the SPDY
  protocol's name, X-Stream-Protocol-Version, not a WebSocket subprotocol.)
- `pkg/kubelet/cri/streaming/server.go` (servePortForward): behind the kubelet it is the
  container runtime's streaming server that runs this, with the pod sandbox's id as `<pod>`
  and an empty uid.
- `staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go`: the subprotocol is the first the
  client offers that is supported, none offered meaning ""; none supported fails the handshake
  with a 403 without body (`vendor/golang.org/x/net/websocket/server.go`); each message starts
  with its channel, a byte for binary, the character '0'+channel followed by base64 of the data
  for base64 (to the client, and decoded from it); an empty message is ignored, as is one for a
  channel that does not exist; a read-only channel (error) drops what a client sends on it. The
  close frame carries 1000 (`websocket/hybi.go`).
- containerd's CRI plugin (`pkg/cri/server/sandbox_portforward_unix.go` of containerd 1.4/1.5,
  the runtime of Kubernetes 1.20 nodes): dials `localhost:<port>` over tcp4 in the pod's network
  namespace, failing with `failed to execute portforward in network namespace "<netns path>":
  failed to dial <port>: dial tcp4 127.0.0.1:<port>: connect: connection refused`; then copies
  both ways until one direction ends, waiting at most a second for the other.

The Python client (kubernetes/stream/ws_client.py, PortForward) offers `v5.channel.k8s.io,
v4.channel.k8s.io` (so v4 is chosen), sends binary messages with the data channel's byte,
checks that the first message of each channel is exactly the channel byte and the port's two
bytes, and takes anything later on an error channel as the port's error (closing the socket).
RFC 6455 gives the frames (icc_sandbox.exec_stream has them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from icc_sandbox.exec_stream import (
    OP_BINARY,
    OP_TEXT,
    ExecRefused,
    choose_protocol,
    encode_frame,
)

# The subprotocols port-forward accepts, and whether their messages are base64 text.
PROTOCOLS: dict[str, bool] = {
    "": False,
    "v4.channel.k8s.io": False,
    "v4.base64.channel.k8s.io": True,
}
# How long one direction may go on after the other ended (containerd's portForward).
HALF_CLOSED_SECONDS = 1.0

_FORWARD_PATH = re.compile(r"^/portForward/([^/]+)/([^/]+)(?:/([^/]+))?$")

# What the kubelet answers instead of upgrading: an HTTP status and its text.
ForwardRefused = ExecRefused


@dataclass(frozen=True)
class ForwardRequest:
    namespace: str
    pod: str
    uid: str  # "" when the path has none
    ports: tuple[int, ...]

    @classmethod
    def parse(cls, path: str, query: str) -> ForwardRequest:
        """From the kubelet's path and query; ForwardRefused(404/400) as the kubelet refuses."""
        match = _FORWARD_PATH.match(path)
        if match is None:
            raise ForwardRefused(404, "404 page not found")
        namespace, pod, uid = (unquote(part or "") for part in match.groups())
        return cls(namespace, pod, uid, parse_ports(parse_qs(query, keep_blank_values=True)))


def parse_ports(values: dict[str, list[str]]) -> tuple[int, ...]:
    """NewV4Options: every `port` parameter, each a comma-separated list of ports 1-65535."""
    given = values.get("port") or []
    if not given:
        raise ForwardRefused(400, 'query parameter "port" is required')
    ports = []
    for value in given:
        if not value:
            raise ForwardRefused(400, 'query parameter "port" cannot be empty')
        for part in value.split(","):
            port = _parse_uint16(part, value)
            if port < 1:
                raise ForwardRefused(400, f'port "{value}" must be > 0')
            ports.append(port)
    return tuple(ports)


def _parse_uint16(text: str, value: str) -> int:
    """strconv.ParseUint(text, 10, 16), its errors in Go's words."""
    prefix = f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{text}": '
    if not text or not text.isascii() or not text.isdigit():
        raise ForwardRefused(400, prefix + "invalid syntax")
    number = int(text)
    if number > 0xFFFF:
        raise ForwardRefused(400, prefix + "value out of range")
    return number


def choose(offered: list[str]) -> str:
    """The first offered subprotocol port-forward supports; ForwardRefused(403) when none."""
    return choose_protocol(offered, PROTOCOLS)


# --- channels and messages ---------------------------------------------------------------------


def data_channel(index: int) -> int:
    return 2 * index


def error_channel(index: int) -> int:
    return 2 * index + 1


def port_header(port: int) -> bytes:
    """The first message's data on both channels of a port: uint16, little-endian."""
    return struct.pack("<H", port)


def message(protocol: str, channel: int, data: bytes) -> bytes:
    """The frame of a message from the kubelet on `channel`: binary with the channel's byte, or
    for base64 text with the character '0'+channel and the data in base64."""
    if PROTOCOLS[protocol]:
        text = chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return encode_frame(OP_TEXT, text.encode("ascii"))
    return encode_frame(OP_BINARY, bytes([channel]) + data)


def opening_frames(protocol: str, ports: tuple[int, ...]) -> list[bytes]:
    """What the kubelet writes right after the handshake: per port, the port on its data
    channel, then on its error channel."""
    return [
        message(protocol, channel(index), port_header(port))
        for index, port in enumerate(ports)
        for channel in (data_channel, error_channel)
    ]


def client_data(protocol: str, payload: bytes, ports: int) -> tuple[int, bytes] | None:
    """(port index, data) of a client's message for one of `ports` ports' data channels; None
    for what the kubelet ignores: an empty message, a channel that does not exist, the error
    channel (written by the kubelet only), base64 that does not decode."""
    if not payload:
        return None
    channel, data = payload[0], payload[1:]
    if PROTOCOLS[protocol]:
        channel -= ord("0")
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    if not 0 <= channel < 2 * ports or channel % 2:
        return None
    return channel // 2, data


# --- the error of a port that cannot be forwarded ----------------------------------------------


def sandbox_id(pod_uid: str) -> str:
    """A pod sandbox id of the runtime's shape (64 hex digits), the same for the same pod."""
    return hashlib.sha256(f"sandbox/{pod_uid}".encode()).hexdigest()


def netns_path(pod_uid: str, host_network: bool = False) -> str:
    """Where the CNI plugin put the pod's network namespace ("host" with hostNetwork)."""
    if host_network:
        return "host"
    digest = hashlib.sha256(f"netns/{pod_uid}".encode()).hexdigest()
    uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    return f"/var/run/netns/cni-{uuid}"


def dial_error(port: int, reason: str) -> str:
    """Go's net.Dial("tcp4", "localhost:<port>") error; `reason` as strerror says it."""
    said = reason[:1].lower() + reason[1:]
    return f"dial tcp4 127.0.0.1:{port}: connect: {said}"


def forward_error(port: int, pod_uid: str, reason: str, host_network: bool = False) -> str:
    """What the error channel of a port carries when the pod does not accept the connection."""
    where = netns_path(pod_uid, host_network)
    return (
        f"error forwarding port {port} to pod {sandbox_id(pod_uid)}, uid : "
        f'failed to execute portforward in network namespace "{where}": '
        f"failed to dial {port}: {dial_error(port, reason)}"
    )


def pod_not_found(namespace: str, pod: str) -> ForwardRefused:
    """The kubelet's answer for a pod whose sandbox is not running."""
    return ForwardRefused(500, f'pod not found ("{pod}_{namespace}")')
