"""The sandbox for integration tests: reused when `make sandbox-up` runs one, else started here.

A sandbox started here is stopped at the end of the session by PID, with its run directory.
Each test gets a fresh namespace in which the student user is `admin`, as on the ICC.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest
import views
from icc_sandbox import cluster
from icc_sandbox.__main__ import running_sandbox
from kubernetes import client, config


@pytest.fixture(scope="session")
def sandbox() -> Iterator[cluster.Sandbox]:
    existing = running_sandbox()
    if existing is not None:
        views.SANDBOX = existing
        yield existing
        return
    began = time.monotonic()
    started = cluster.start()
    views.SANDBOX = started
    print(f"\nsandbox started in {time.monotonic() - began:.1f}s at {started.server}")
    try:
        yield started
    finally:
        cluster.stop(started)


def _api_client(kubeconfig) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def admin_client(sandbox: cluster.Sandbox) -> Iterator[client.ApiClient]:
    with _api_client(sandbox.admin_kubeconfig) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def student_client(sandbox: cluster.Sandbox) -> Iterator[client.ApiClient]:
    with _api_client(sandbox.student_kubeconfig) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def core(admin_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(admin_client)


@pytest.fixture
def namespace(sandbox: cluster.Sandbox, core: client.CoreV1Api, request) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    sandbox.create_namespace(name)
    sandbox.wait_until_usable(name)
    yield name
    # The namespace controller deletes what is inside; the node agent finishes the pods.
    core.delete_namespace(name)


@pytest.fixture
def second_namespace(sandbox: cluster.Sandbox, core: client.CoreV1Api, namespace) -> Iterator[str]:
    """A second namespace beside `namespace` (a course of two), deleted after the test as that
    one is. Its name is not `namespace`'s with something added: files named after one must not
    match the other's."""
    name = f"{namespace.rsplit('-', 1)[0]}-b-{secrets.token_hex(3)}"
    sandbox.create_namespace(name)
    sandbox.wait_until_usable(name)
    yield name
    core.delete_namespace(name)
