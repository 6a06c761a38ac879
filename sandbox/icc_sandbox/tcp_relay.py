"""One listening TCP port whose connections are relayed, byte for byte, to a backend.

The sandbox's kube-proxy (a ClusterIP:port to a ready endpoint) and its gateway (a port on the
machine's 127.0.0.1 to an address inside the sandbox's network namespace) are both this: they
differ in where they listen, which backend they choose and how they open the connection to it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Backend = tuple[str, int]
# Opens the connection to a backend; the gateway opens it inside another network namespace.
Connect = Callable[[Backend], socket.socket]


def connect_here(backend: Backend) -> socket.socket:
    return socket.create_connection(backend, timeout=5)


class Relay:
    """Listens on `address` and relays each connection to the next of `backends`, in turn; with
    none, a connection is closed at once (as kube-proxy's REJECT rule refuses it)."""

    def __init__(
        self, address: Backend, backends: tuple[Backend, ...] = (), connect: Connect = connect_here
    ) -> None:
        self.backends = backends
        self._connect = connect
        self._turn = 0
        self._socket = socket.create_server(address, reuse_port=False)
        self._socket.settimeout(0.5)
        self.address: Backend = self._socket.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._accept, name=f"relay-{self.address[0]}:{self.address[1]}", daemon=True
        )
        self._thread.start()

    def _next_backend(self) -> Backend | None:
        backends = self.backends
        if not backends:
            return None
        self._turn = (self._turn + 1) % len(backends)
        return backends[self._turn]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            backend = self._next_backend()
            if backend is None:
                client.close()
                continue
            threading.Thread(target=self._forward, args=(client, backend), daemon=True).start()

    def _forward(self, client: socket.socket, backend: Backend) -> None:
        try:
            upstream = self._connect(backend)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        pump.start()
        _pump(client, upstream)
        pump.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        self._socket.close()
        self._thread.join(timeout=2)


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)  # pass the half-close on, like a TCP proxy
