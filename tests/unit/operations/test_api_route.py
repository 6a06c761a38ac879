"""The way the API smoke test reaches TGI (module_utils/operations/api_route.py): base URLs,
the Service's port a port-forward goes to, and why a port-forward did not open."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations import api_route as t


def test_a_refused_port_forward_names_the_right_and_the_proxy_as_fallback():
    said = t.forward_refused(
        "tgi-1",
        403,
        'pods "tgi-1" is forbidden: User "s" cannot get resource "pods/portforward" in API '
        'group "" in the namespace "ns"',
        "icc_test_tgi_url",
    )
    assert said == (
        'the port-forward to pod tgi-1 is forbidden: pods "tgi-1" is forbidden: User "s" cannot '
        'get resource "pods/portforward" in API group "" in the namespace "ns". It needs get and '
        "create on pods/portforward in the namespace (RBAC; rbac/haw-icc-deployer.yml grants "
        "it): ask for it, or test through the API server's service proxy with "
        "-e icc_test_tgi_url=proxy (no key reaches TGI there: the keyed checks are skipped)"
    )
    other = t.forward_refused("w-1", 500, "error dialing backend", "icc_test_open_webui_url")
    assert other.startswith("no port-forward to pod w-1 (500: error dialing backend); or test")
    assert other.endswith(
        "-e icc_test_open_webui_url=proxy (no key reaches TGI there: the keyed checks are skipped)"
    )


SERVICE = {
    "metadata": {"name": "tgi"},
    "spec": {
        "ports": [
            {"name": "http", "port": 3333, "targetPort": "http"},
            {"name": "metrics", "port": 9000, "targetPort": 9090},
            {"name": "same", "port": 8000},
        ]
    },
}
POD = {
    "metadata": {"name": "tgi-1"},
    "spec": {"containers": [{"name": "tgi", "ports": [{"name": "http", "containerPort": 80}]}]},
}


def test_the_forwarded_port_is_the_one_the_services_port_targets():
    assert t.target_port(SERVICE, 3333, POD) == 80  # by the container port's name
    assert t.target_port(SERVICE, 9000, POD) == 9090  # a number
    assert t.target_port(SERVICE, 8000, POD) == 8000  # none: the Service's port itself
    with pytest.raises(
        ValueError, match=r"^Service tgi has no port 80 \(it has 3333, 9000, 8000\)$"
    ):
        t.target_port(SERVICE, 80, POD)
    unnamed = {"metadata": {"name": "tgi-2"}, "spec": {"containers": [{"name": "tgi"}]}}
    with pytest.raises(ValueError) as error:
        t.target_port(SERVICE, 3333, unnamed)
    assert str(error.value) == (
        "Service tgi port 3333 targets the port named 'http', which no container of pod "
        "tgi-2 declares"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:3333", None),
        ("https://llm.example.org/prefix/", None),
        (
            "ftp://x",
            "icc_test_tgi_url must be an http:// or https:// URL with a host, not 'ftp://x'",
        ),
        (
            "http://",
            "icc_test_tgi_url must be an http:// or https:// URL with a host, not 'http://'",
        ),
        (
            "http://h/?a=1",
            "icc_test_tgi_url must be a base URL without a query or fragment, not 'http://h/?a=1'",
        ),
        ("http://h:99999", "icc_test_tgi_url has an invalid port: 'http://h:99999'"),
    ],
)
def test_url_problems(url, problem):
    assert t.url_problem("icc_test_tgi_url", url) == problem


def test_urls():
    assert t.join_url("https://h/prefix/", "/health") == "https://h/prefix/health"
