"""The sandbox's simulated kube-proxy and cluster DNS: what Services ask for, and a real forward."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
from icc_sandbox.nodes import NodeSpec
from icc_sandbox.service_network import (
    ServiceNetwork,
    dead_resolver,
    hosts_file,
    resolv_conf,
    service_ports,
    service_range,
    write_in_place,
)


def service(namespace, name, cluster_ip, *ports):
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
        },
    }


def endpoints(namespace, name, ready, not_ready=(), ports=(("http", 80),)):
    return {
        "metadata": {"namespace": namespace, "name": name},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ready],
                "notReadyAddresses": [{"ip": ip} for ip in not_ready],
                "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
            }
        ],
    }


def test_the_service_range_and_the_resolver_lie_where_no_pod_ip_falls():
    network = "10.201.0.0/16"
    services = ipaddress.ip_network(service_range(network))
    resolver = ipaddress.ip_address(dead_resolver(network))
    assert services == ipaddress.ip_network("10.201.0.0/20")
    node = NodeSpec(name="n", index=0, cpu="1", memory="1Gi", pod_network=network)
    pod_ips = {ipaddress.ip_address(node.pod_ip(f"uid-{i}")) for i in range(2000)}
    assert not any(ip in services for ip in pod_ips)
    assert resolver not in pod_ips and resolver not in services
    assert resolver in ipaddress.ip_network(network)


def test_a_service_port_goes_to_the_ready_endpoints_of_its_named_port_only():
    ports = service_ports(
        [
            service("ns", "tgi", "10.201.0.7", ("http", 3333)),
            service("ns", "headless", "None", ("http", 80)),
        ],
        [endpoints("ns", "tgi", ["10.201.40.1"], not_ready=["10.201.40.2"])],
    )
    assert [(p.cluster_ip, p.port, p.backends) for p in ports] == [
        ("10.201.0.7", 3333, (("10.201.40.1", 80),))
    ]


def test_a_service_without_endpoints_has_no_backend():
    (port,) = service_ports([service("ns", "tgi", "10.201.0.7", ("http", 3333))], [])
    assert port.backends == ()


def test_hosts_name_services_as_cluster_dns_does_with_bare_names_for_the_own_namespace():
    text = hosts_file(
        "mine",
        [
            service("mine", "tgi", "10.201.0.7", ("http", 3333)),
            service("other", "db", "10.201.0.9"),
        ],
    )
    lines = {line.split("\t")[0]: line.split("\t")[1].split() for line in text.splitlines()}
    assert lines["10.201.0.7"] == [
        "tgi.mine.svc.cluster.local",
        "tgi.mine.svc",
        "tgi.mine",
        "tgi",
    ]
    assert "db" not in lines["10.201.0.9"] and "db.other" in lines["10.201.0.9"]


def test_resolv_conf_has_the_pod_search_path_and_only_the_dead_resolver():
    text = resolv_conf("mine", "10.201.255.202")
    assert text.splitlines()[0] == "nameserver 10.201.255.202"
    assert "search mine.svc.cluster.local svc.cluster.local cluster.local" in text
    assert text.count("nameserver") == 1


def test_write_in_place_keeps_the_inode_a_bind_mount_shows(tmp_path):
    path = tmp_path / "hosts"
    write_in_place(path, "first\n")
    inode = path.stat().st_ino
    write_in_place(path, "second, longer than the first\n")
    write_in_place(path, "third\n")
    assert path.read_text() == "third\n"
    assert path.stat().st_ino == inode


def _free_port(host: str) -> int:
    with socket.create_server((host, 0)) as probe:
        return probe.getsockname()[1]


def _echo_server(host: str) -> tuple[socket.socket, int]:
    server = socket.create_server((host, 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"backend says: " + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_the_proxy_forwards_a_cluster_ip_connection_to_a_ready_endpoint(tmp_path):
    # Loopback addresses stand in for ClusterIP and pod IP: both bindable without root.
    backend, backend_port = _echo_server("127.0.0.21")
    port = _free_port("127.0.0.20")
    network = ServiceNetwork("10.201.0.0/16", tmp_path / "dns")
    try:
        network.sync(
            [service("ns", "tgi", "127.0.0.20", ("http", port))],
            [endpoints("ns", "tgi", ["127.0.0.21"], ports=(("http", backend_port),))],
        )
        with socket.create_connection(("127.0.0.20", port), timeout=5) as conn:
            conn.sendall(b"hi")
            assert conn.recv(100) == b"backend says: hi"
        hosts = (tmp_path / "dns").iterdir()
        assert list(hosts) == []  # DNS files only for namespaces that asked for them
        hosts_path, resolv_path = network.dns_files("ns")
        assert "127.0.0.20\ttgi.ns.svc.cluster.local" in hosts_path.read_text()
        network.sync([], [])  # the Service is gone: so is its listener
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.20", port), timeout=2).close()
        assert "tgi" not in hosts_path.read_text()
        assert resolv_path.exists()
    finally:
        network.close()
        backend.close()


def test_the_proxy_closes_a_connection_when_no_endpoint_is_ready(tmp_path):
    port = _free_port("127.0.0.22")
    network = ServiceNetwork("10.201.0.0/16", tmp_path / "dns")
    try:
        network.sync([service("ns", "tgi", "127.0.0.22", ("http", port))], [])
        with socket.create_connection(("127.0.0.22", port), timeout=5) as conn:
            conn.settimeout(5)
            assert conn.recv(10) == b""  # closed at once, not left hanging
    finally:
        network.close()
