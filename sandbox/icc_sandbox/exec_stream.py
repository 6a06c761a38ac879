"""The kubelet's side of `pods/exec` over a WebSocket: the request, the handshake, the frames.

The API server forwards an exec request (`GET` or `POST /exec/{namespace}/{pod}/{container}?
command=...&output=1&error=1[&input=1][&tty=1]`, with the client's `Upgrade: websocket`
headers) to the node's kubelet and then pipes bytes both ways. What the kubelet speaks on that
connection, as read in Kubernetes' source (v1.20 and later, unchanged in these points):

- `staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go`: the subprotocol is the first one the
  client lists that the server supports (no header: ""); every message starts with its channel
  number, as a byte for the binary protocols, as the digit '0'+n followed by base64 of the data
  for `base64.channel.k8s.io`. An unsupported protocol fails the handshake (403).
- `pkg/kubelet/cri/streaming/remotecommand/websocket.go`: exec accepts "", `channel.k8s.io`,
  `base64.channel.k8s.io`, `v4.channel.k8s.io` and `v4.base64.channel.k8s.io` (the names v2/v3
  are SPDY's, not WebSocket subprotocols); once open it writes an empty message on the lowest
  requested output channel (stdout, else stderr, else the error channel);
- `.../remotecommand/exec.go` and `httpstream.go`: when the command ends the v4 protocols write
  a metav1.Status as JSON on channel 3, Success, or Failure with reason NonZeroExitCode and the
  exit code as the message of a cause of type (JSON key `reason`) ExitCode; the older protocols
  write only a failure, as its plain message. Then the connection closes (a close frame).
- `pkg/kubelet/server/server.go` (getExec) and `remotecommand.NewOptions`: none of stdin, stdout
  and stderr is a 400; tty turns stderr off; an unknown pod is a 404 "pod does not exist".

The Python client (`kubernetes/stream/ws_client.py`) offers `v5.channel.k8s.io,v4.channel.k8s.io`
and reads the exit code from channel 3 as above; kubernetes.core.k8s_exec does the same. RFC 6455
gives the handshake's accept key and the frame layout. Pure functions; the socket work is in
icc_sandbox.kubelet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

# RFC 6455, section 1.3: appended to the client's key before hashing.
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000

# What exec accepts, and whether its messages are base64 text; "" is a client naming none.
PROTOCOLS: dict[str, bool] = {
    "": False,
    "channel.k8s.io": False,
    "base64.channel.k8s.io": True,
    "v4.channel.k8s.io": False,
    "v4.base64.channel.k8s.io": True,
}
# The protocols whose status channel carries a metav1.Status in JSON (also on success).
STATUS_AS_JSON = frozenset({"v4.channel.k8s.io", "v4.base64.channel.k8s.io"})

_EXEC_PATH = re.compile(r"^/exec/([^/]+)/([^/]+)/(?:([^/]+)/)?([^/]+)$")
_CONNECTION_UPGRADE = re.compile(r"(^|.*,\s*)upgrade($|\s*,)")


class ExecRefused(Exception):
    """What the kubelet answers instead of upgrading: an HTTP status and its text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ExecRequest:
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def parse(cls, path: str, query: str) -> ExecRequest:
        """From the kubelet's path and query; ExecRefused(404/400) as the kubelet refuses."""
        match = _EXEC_PATH.match(path)
        if match is None:
            raise ExecRefused(404, "404 page not found")
        namespace, pod, _uid, container = (unquote(part or "") for part in match.groups())
        values = parse_qs(query, keep_blank_values=True)

        def flag(name: str) -> bool:
            return values.get(name, [""])[-1] == "1"

        # The API server passes the options on under the kubelet's names (input, output,
        # error: ExecStdinParam... in k8s.io/api/core/v1); a client talking to the kubelet
        # directly may use the API's names (stdin, stdout, stderr).
        tty = flag("tty")
        stdin = flag("input") or flag("stdin")
        stdout = flag("output") or flag("stdout")
        stderr = flag("error") or flag("stderr")
        if tty and stderr:
            stderr = False  # remotecommand.NewOptions: no stderr with a terminal
        if not (stdin or stdout or stderr):
            raise ExecRefused(400, "you must specify at least 1 of stdin, stdout, stderr")
        command = tuple(values.get("command", []))
        return cls(namespace, pod, container, command, stdin, stdout, stderr, tty)


def is_websocket_upgrade(headers: Any) -> bool:
    """wsstream.IsWebSocketRequest: `Upgrade: websocket` and a Connection naming upgrade."""
    if (headers.get("Upgrade") or "").strip().lower() != "websocket":
        return False
    return bool(_CONNECTION_UPGRADE.match((headers.get("Connection") or "").lower()))


def offered_protocols(header_values: list[str]) -> list[str]:
    """The subprotocols of (possibly several) Sec-WebSocket-Protocol headers, in order."""
    return [part.strip() for value in header_values for part in value.split(",") if part.strip()]


def choose_protocol(offered: list[str], supported: Mapping[str, bool] = PROTOCOLS) -> str:
    """The first offered subprotocol of `supported` (exec's by default; "" when none is
    offered); ExecRefused(403) naming both lists when none fits, as the Go handshake does."""
    for protocol in offered or [""]:
        if protocol in supported:
            return protocol
    names = " ".join(sorted(supported, key=lambda name: (len(name), name)))
    raise ExecRefused(
        403,
        f"requested protocol(s) are not supported: [{' '.join(offered)}]; supports [{names}]",
    )


def accept_key(client_key: str) -> str:
    """Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (RFC 6455, 4.2.2)."""
    digest = hashlib.sha1((client_key.strip() + _WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_response(client_key: str, protocol: str) -> bytes:
    """The 101 response that opens the connection with the chosen subprotocol."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(client_key)}",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame; a server sends it unmasked, a client with a 4-byte `mask`."""
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    if len(mask) != 4:
        raise ValueError("a frame mask has 4 bytes")
    return head + mask + _unmask(payload, mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def read_frame(read: Callable[[int], bytes], limit: int = 1 << 20) -> Frame:
    """One frame from `read(n)` (which returns up to n bytes, b"" at the end); the payload is
    unmasked. EOFError when the peer closed, ValueError for a frame over `limit` bytes."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = read(count - len(data))
            if not chunk:
                raise EOFError("the connection closed inside a frame")
            data += chunk
        return data

    first, second = exactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exactly(8))[0]
    if size > limit:
        raise ValueError(f"a frame of {size} bytes is over the limit of {limit}")
    mask = exactly(4) if second & 0x80 else None
    payload = exactly(size)
    return Frame(bool(first & 0x80), first & 0x0F, _unmask(payload, mask) if mask else payload)


def channel_frame(protocol: str, channel: int, data: bytes) -> bytes:
    """A server message on `channel`: binary with the channel byte, or for the base64
    protocols text with the channel digit and the data in base64."""
    if PROTOCOLS[protocol]:
        text = str(channel) + base64.b64encode(data).decode("ascii")
        return encode_frame(OP_TEXT, text.encode("ascii"))
    return encode_frame(OP_BINARY, bytes([channel]) + data)


def close_frame(code: int = CLOSE_NORMAL) -> bytes:
    return encode_frame(OP_CLOSE, struct.pack("!H", code))


# --- the status channel -------------------------------------------------------------------------


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(code: int, command: tuple[str, ...]) -> dict[str, Any]:
    """A command that ended with a non-zero exit code, in containerd's words."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(error: str) -> dict[str, Any]:
    """A command that did not run (apierrors.NewInternalError of the runtime's error)."""
    message = f"error executing command in container: {error}"
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def status_payload(protocol: str, status: dict[str, Any]) -> bytes | None:
    """What goes on channel 3: JSON for v4; for the older protocols the message of a failure
    only (None: nothing is written)."""
    if protocol in STATUS_AS_JSON:
        return json.dumps(status, separators=(",", ":")).encode()
    if status["status"] == "Success":
        return None
    return str(status.get("message", "")).encode()


@dataclass(frozen=True)
class ExecOutput:
    """What a command did: its output, and either an exit code or the runtime's error."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = 0
    runtime_error: str | None = None  # set: the command did not start (exit_code unused)


def session_frames(protocol: str, request: ExecRequest, output: ExecOutput) -> list[bytes]:
    """Every frame the kubelet sends after the handshake, the close frame last."""
    if request.stdout:
        first = STDOUT
    elif request.stderr:
        first = STDERR
    else:
        first = ERROR
    frames = [channel_frame(protocol, first, b"")]
    out, err = output.stdout, output.stderr
    if request.tty:  # one stream, and the terminal's line endings
        out = (out + err).replace("\r\n", "\n").replace("\n", "\r\n")
        err = ""
    if request.stdout and out:
        frames.append(channel_frame(protocol, STDOUT, out.encode()))
    if request.stderr and err:
        frames.append(channel_frame(protocol, STDERR, err.encode()))
    if output.runtime_error is not None:
        status = internal_error_status(output.runtime_error)
    elif output.exit_code:
        status = exit_code_status(output.exit_code, request.command)
    else:
        status = success_status()
    payload = status_payload(protocol, status)
    if payload is not None:
        frames.append(channel_frame(protocol, ERROR, payload))
    frames.append(close_frame())
    return frames
