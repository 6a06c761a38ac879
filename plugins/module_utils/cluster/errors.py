# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The collection's one error type for the Kubernetes API, and the one place that words what the
API server answered or why nothing answered (used by ClusterApi in api.py).

Every failure is an `ApiError` (`NoAnswer` when nothing answered), worded by `api_error` from
what the kubernetes library, urllib3 or the WebSocket client raised: the API server's own
message, its status and reason, or why no answer came. `translated` turns their exceptions into
ApiError; nothing else in the collection reads them.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any, Iterator  # noqa: UP035 - modules may run on older Pythons

try:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
    from websocket import WebSocketException
except ImportError:  # pragma: no cover - the collection requires them; ansible-test imports this
    ApiException = HTTPError = WebSocketException = OSError

RERUN_HINT = (
    "Is the API server running, and reachable from here (VPN)? Run the playbook again once it "
    "answers: what was applied stays, the re-run does the rest."
)
SERVER_ERROR_HINT = (
    "Run the playbook again once the cluster is healthy: what was applied stays, the re-run "
    "does the rest."
)
# Statuses that waiting does not change: the credentials, the rights, the object.
LASTING = (401, 403, 404)


class ApiError(Exception):
    """A request that failed. `status` and `reason` are the API server's answer, `said` its own
    words (a Status object's message, else the body, else status and reason); str() is the line
    for the user. `lasting` when waiting cannot help (401, 403, 404)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        said: str | None = None,
        reason: str = "",
        body: Any = b"",
        server: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.said = message if said is None else said
        self.reason = reason
        self.body = body
        self.server = server

    @property
    def lasting(self) -> bool:
        return self.status in LASTING


class NoAnswer(ApiError):
    """Nothing answered: the API server (or the node behind a stream) could not be reached.
    `said` is why, in a few words; `server` the address that did not answer."""


def _clean(text: str) -> str:
    """The first line of a connection error, without urllib3's connection object ("<...object at
    0x...>: " or "HTTPSConnection(host=..., port=...): "), or just the errno's words."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    text = re.sub(r"^(?:<[^<>]*>|\w*Connection(?:Pool)?\([^()]*\)): ", "", text)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return errno.group(1).strip() if errno else text


# A connection the server ended mid-request reads differently by where it broke (a reset, an
# EOF inside TLS, a closed HTTP connection, a broken pipe): said in the same words, one incident
# (an API server going away) gives one message, whichever request met it.
CLOSED = "the server closed the connection"
_CLOSED = re.compile(
    r"reset by peer|UNEXPECTED_EOF|EOF occurred in violation|Remote end closed|Broken pipe",
    re.IGNORECASE,
)


def connection_reason(error: Any) -> str:
    """Why a connection failed, in a few words: "Connection refused", "Read timed out.", the
    server closed the connection...

    urllib3 wraps the cause (MaxRetryError.reason); the cause is what a reader needs.
    """
    reason = _connection_reason(error)
    return CLOSED if _CLOSED.search(reason) else reason


def _connection_reason(error: Any) -> str:
    seen = 0
    while getattr(error, "reason", None) is not None and seen < 5:  # MaxRetryError -> its cause
        reason = error.reason
        if not isinstance(reason, BaseException):
            break
        error, seen = reason, seen + 1
    args = getattr(error, "args", ())
    if len(args) == 2 and isinstance(args[1], BaseException):  # ProtocolError("...", cause)
        return f"{str(args[0]).rstrip('.')}: {_connection_reason(args[1])}"
    if isinstance(error, ApiException) and not error.status:  # the library's "status 0"
        return _clean(str(error.reason or "")) or type(error).__name__
    return _clean(str(error)) or type(error).__name__


def error_server(error: Any, default: str | None = None) -> str | None:
    """The address a urllib3 error was about (its pool, or its connection), else `default`."""
    for holder in (error, getattr(error, "reason", None)):
        for attribute in ("conn", "pool"):  # NewConnectionError.pool is deprecated
            endpoint = getattr(holder, attribute, None)
            host, port = getattr(endpoint, "host", None), getattr(endpoint, "port", None)
            if host and port:
                secure = "HTTPS" in type(endpoint).__name__
                scheme = getattr(endpoint, "scheme", None) or ("https" if secure else "http")
                return f"{scheme}://{host}:{port}"
    return default


def _text(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body if isinstance(body, str) else ""


def _status_message(body: str) -> str | None:
    """The message of a Kubernetes Status object in JSON, else None."""
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        return None
    return str(answer["message"]) if isinstance(answer, dict) and answer.get("message") else None


def api_error(error: Any, server: str | None = None) -> ApiError:
    """The ApiError for what the kubernetes library, urllib3 or the WebSocket client raised.

    A refused WebSocket upgrade (exec, port-forward) arrives as the library's status 0 with the
    reason `Handshake status 403 Forbidden -+-+- {headers} -+-+- {body}`: its status and body
    count as the answer. Any other status 0, and every error of the connection, is NoAnswer.
    """
    status = getattr(error, "status", None) or None
    reason = str(getattr(error, "reason", None) or "") if isinstance(error, ApiException) else ""
    handshake = re.match(r"Handshake status (\d{3})", reason)
    if isinstance(error, ApiException) and (status or handshake):
        if handshake:
            status = int(handshake.group(1))
            parts = [part.strip() for part in reason.split("-+-+-")]
            head, body = parts[0].splitlines()[0], parts[-1] if len(parts) > 1 else ""
            said = _status_message(body) or (f"{head}: {body.splitlines()[0]}" if body else head)
        else:
            body = _text(error.body)
            said = _status_message(body) or body or f"{status} {reason}".strip()
        message = said
        if status >= 500:  # etcd away, the server overloaded: not this run's fault
            where = f" at {server}" if server else ""
            message = f"the API server{where} answered {status}: {said}. {SERVER_ERROR_HINT}"
        return ApiError(message, status, said, reason, body, server)
    where = error_server(error, server) or "the cluster"
    why = connection_reason(error)
    return NoAnswer(
        f"cannot reach the cluster at {where} ({why}). {RERUN_HINT}", said=why, server=where
    )


@contextmanager
def translated(server: str | None) -> Iterator[None]:
    """Turns what the kubernetes library, urllib3 and the WebSocket client raise into ApiError:
    the one place that reads their exceptions."""
    try:
        yield
    except (ApiException, HTTPError, OSError, WebSocketException) as error:
        raise api_error(error, server) from error
