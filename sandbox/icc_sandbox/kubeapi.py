"""A minimal JSON client for the Kubernetes API, enough for the sandbox's own processes.

The sandbox talks to the API server with plain dicts (node and pod status, leases, PVs). A tiny
client keeps the node agent independent of the Python client's generated models, which lag
behind or run ahead of the 1.20 server the sandbox builds.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class KubeApi:
    def __init__(self, server: str, token: str, ca_file: str | None, timeout: float = 10.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file)

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> KubeApi:
        """Reads the kubeconfigs the sandbox writes itself (token user, CA file, one context)."""
        config = yaml.safe_load(Path(path).read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        return cls(cluster["server"], user["token"], cluster.get("certificate-authority"))

    def request(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JSON:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(
                req, context=self.context, timeout=timeout or self.timeout
            ) as response:
                raw = response.read()
                is_json = response.headers.get_content_type() == "application/json"
        except urllib.error.HTTPError as error:
            raise ApiError(
                error.code, error.read().decode(errors="replace"), method, path
            ) from None
        # Health endpoints such as /readyz answer plain text.
        return json.loads(raw) if raw and is_json else {}

    def get(self, path: str) -> JSON:
        return self.request("GET", path)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def patch(self, path: str, body: JSON, content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", path, body, content_type)

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)

    def ensure(self, path: str, body: JSON) -> JSON:
        """Creates the object unless it exists already (then returns the live one)."""
        try:
            return self.create(path, body)
        except ApiError as error:
            if error.status != 409:
                raise
            name = body["metadata"]["name"]
            return self.get(f"{path}/{name}")
