"""The simulated kubelet's port-forward: the request, the channels and their messages, the
runtime's error (icc_sandbox.portforward_stream), and a whole forward through the kubelet's
socket code to a TGI stand-in, read by the Python client's own PortForward.

The expected bytes are written out by hand from RFC 6455 (frame layout: FIN and opcode, the
length, a client's mask) and Kubernetes' port-forward protocol (two channels per port, the
port as uint16 little-endian first on each; base64 messages start with '0'+channel).
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
from urllib.parse import urlsplit

import pytest
from icc_sandbox.exec_stream import OP_BINARY, read_frame
from icc_sandbox.kubelet import ForwardTarget, Kubelets, forward_target
from icc_sandbox.nodes import NodeSpec, Timing
from icc_sandbox.portforward_stream import (
    ForwardRefused,
    ForwardRequest,
    choose,
    client_data,
    data_channel,
    error_channel,
    forward_error,
    message,
    netns_path,
    opening_frames,
    port_header,
    sandbox_id,
)
from icc_sandbox.tgi_standin import TgiStandIn
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import PortForward, create_websocket
from test_kubelet_exec import FakeApi  # pods by path, 404 for the rest

V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
UID = "6f1c2a90-3b1e-4c55-9d7e-2b8f0a1c4d21"


# --- the request ---------------------------------------------------------------------------------


def test_the_ports_come_from_the_kubelets_port_parameter():
    request = ForwardRequest.parse("/portForward/wabc123-default/tgi-7d9c", "port=80,8080")
    assert request == ForwardRequest("wabc123-default", "tgi-7d9c", "", (80, 8080))
    twice = ForwardRequest.parse("/portForward/ns/p/uid-1", "port=3333&port=80")
    assert (twice.uid, twice.ports) == ("uid-1", (3333, 80))


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("", 'query parameter "port" is required'),
        ("ports=80", 'query parameter "port" is required'),  # the API's name, not the kubelet's
        ("port=", 'query parameter "port" cannot be empty'),
        (
            "port=http",
            'unable to parse "http" as a port: strconv.ParseUint: parsing "http": invalid syntax',
        ),
        (
            "port=80,70000",
            'unable to parse "80,70000" as a port: strconv.ParseUint: parsing "70000": '
            "value out of range",
        ),
        ("port=0", 'port "0" must be > 0'),
    ],
)
def test_bad_ports_are_a_400_in_the_kubelets_words(query, said):
    with pytest.raises(ForwardRefused) as error:
        ForwardRequest.parse("/portForward/ns/p", query)
    assert (error.value.status, str(error.value)) == (400, said)


def test_a_path_that_is_no_port_forward_is_a_404():
    with pytest.raises(ForwardRefused) as error:
        ForwardRequest.parse("/portForward/ns", "port=80")
    assert error.value.status == 404


def test_the_python_clients_offer_gets_v4_and_execs_old_protocol_is_refused():
    # kubernetes.stream offers v5 first, which a 1.20 kubelet does not know.
    assert choose(["v5.channel.k8s.io", "v4.channel.k8s.io"]) == V4
    assert choose([V4_BASE64, V4]) == V4_BASE64
    assert choose([]) == ""
    with pytest.raises(ForwardRefused) as error:
        choose(["channel.k8s.io", "base64.channel.k8s.io"])  # exec's, not port-forward's
    assert error.value.status == 403


# --- channels and messages -----------------------------------------------------------------------


def test_each_port_has_a_data_and_an_error_channel_in_the_order_asked():
    assert [(data_channel(i), error_channel(i)) for i in range(3)] == [(0, 1), (2, 3), (4, 5)]


def test_the_port_header_is_uint16_little_endian():
    assert port_header(80) == b"\x50\x00"  # 80 = 0x0050
    assert port_header(8080) == b"\x90\x1f"  # 8080 = 0x1F90
    assert port_header(65535) == b"\xff\xff"


def test_the_opening_frames_binary():
    # 0x82: FIN and opcode 2 (binary); 0x03: unmasked, 3 bytes; then channel, port low, high.
    assert opening_frames(V4, (80, 8080)) == [
        b"\x82\x03\x00\x50\x00",
        b"\x82\x03\x01\x50\x00",
        b"\x82\x03\x02\x90\x1f",
        b"\x82\x03\x03\x90\x1f",
    ]
    assert opening_frames("", (80,)) == [b"\x82\x03\x00\x50\x00", b"\x82\x03\x01\x50\x00"]


def test_the_opening_frames_base64():
    # 0x81: FIN and opcode 1 (text); 0x05: 5 bytes; '0'+channel, then base64 of the two bytes:
    # 50 00 -> 010100 000000 0000(00) -> "UAA="; 90 1f -> 100100 000001 1111(00) -> "kB8=".
    assert opening_frames(V4_BASE64, (80, 8080)) == [
        b"\x81\x050UAA=",
        b"\x81\x051UAA=",
        b"\x81\x052kB8=",
        b"\x81\x053kB8=",
    ]


def test_data_and_error_messages_from_the_kubelet():
    assert message(V4, 2, b"HTTP/1.0 200 OK\r\n") == b"\x82\x12\x02HTTP/1.0 200 OK\r\n"
    # 'hi' = 68 69 -> 011010 000110 1001(00) -> "aGk="
    assert message(V4_BASE64, 1, b"hi") == b"\x81\x051aGk="
    # Channel 10 in base64 is ':' ('0' + 10), as Go's string('0'+num).
    assert message(V4_BASE64, 10, b"hi")[2:3] == b":"
    # 126 bytes need the 16-bit length form: 0x7e, then 00 7f (127 with the channel byte).
    assert message(V4, 0, b"x" * 126)[:5] == b"\x82\x7e\x00\x7f\x00"


def test_what_the_client_sends_reaches_the_ports_data_channel_only():
    # RFC 6455 5.3: a client masks its payload; with the RFC's key 37 fa 21 3d, b"\x00GET" is
    # 00^37=37, 47^fa=bd, 45^21=64, 54^3d=69.
    frame = read_frame(io.BytesIO(b"\x82\x84\x37\xfa\x21\x3d\x37\xbd\x64\x69").read)
    assert (frame.opcode, frame.payload) == (OP_BINARY, b"\x00GET")
    assert client_data(V4, frame.payload, ports=1) == (0, b"GET")
    assert client_data(V4, b"\x02body", ports=2) == (1, b"body")
    assert client_data(V4_BASE64, b"2aGk=", ports=2) == (1, b"hi")
    assert client_data(V4, b"\x01oops", ports=1) is None  # an error channel is the kubelet's
    assert client_data(V4, b"\x02late", ports=1) is None  # no such channel
    assert client_data(V4, b"", ports=1) is None  # an empty message is ignored
    assert client_data(V4_BASE64, b"0not base64!", ports=1) is None


# --- the runtime's error -------------------------------------------------------------------------


def test_a_port_nothing_listens_on_gets_containerds_error():
    said = forward_error(8080, UID, "Connection refused")
    pod, where = sandbox_id(UID), netns_path(UID)
    assert said == (
        f"error forwarding port 8080 to pod {pod}, uid : failed to execute portforward in "
        f'network namespace "{where}": failed to dial 8080: dial tcp4 127.0.0.1:8080: '
        "connect: connection refused"
    )
    assert re.fullmatch(r"[0-9a-f]{64}", pod) and pod == sandbox_id(UID) != sandbox_id("other")
    assert re.fullmatch(r"/var/run/netns/cni-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", where)
    assert 'network namespace "host"' in forward_error(80, UID, "x", host_network=True)


# --- the kubelet's lookup ------------------------------------------------------------------------

NODE = NodeSpec("icc-gpu-v100-1", 0, "32", "192Gi", "gpu-tesla-v100", "Tesla-V100-PCIE-16GB", 4)


def pod(ip: str | None = "127.10.1.2", started: bool = True, node: str = NODE.name) -> dict:
    status = {"phase": "Running"} | ({"podIP": ip} if ip else {})
    if started:
        status["startTime"] = "2023-11-14T22:13:20Z"
    return {
        "metadata": {"name": "tgi-7d9c", "namespace": "ns", "uid": UID},
        "spec": {"nodeName": node, "containers": [{"name": "tgi"}]},
        "status": status,
    }


def test_the_target_is_the_pods_ip_and_refusals_are_the_kubelets():
    request = ForwardRequest("ns", "tgi-7d9c", "", (80,))
    assert forward_target(FakeApi(pod()), NODE, request) == ForwardTarget("127.10.1.2", UID)

    def refusal(api, asked=request) -> tuple[int, str]:
        with pytest.raises(ForwardRefused) as error:
            forward_target(api, NODE, asked)
        return error.value.status, str(error.value)

    assert refusal(FakeApi()) == (404, "pod does not exist")
    assert refusal(FakeApi(pod(node="icc-cpu-1"))) == (404, "pod does not exist")
    other_uid = ForwardRequest("ns", "tgi-7d9c", "another-uid", (80,))
    assert refusal(FakeApi(pod()), other_uid) == (404, "pod not found")
    assert refusal(FakeApi(pod(ip=None))) == (500, 'pod not found ("tgi-7d9c_ns")')
    assert refusal(FakeApi(pod(started=False))) == (500, 'pod not found ("tgi-7d9c_ns")')


# --- a whole forward, read by the Python client ---------------------------------------------


@pytest.fixture
def kubelet_and_tgi():
    """A node's kubelet (TLS, its own port on 127.0.1.1) and a TGI stand-in at the pod's IP."""
    standin = TgiStandIn("example-org/tiny-chat", "s3cret", "127.10.1.2").start()
    kubelets = Kubelets(FakeApi(pod()), [NODE], Timing()).start()
    try:
        yield kubelets.ports[NODE.name], urlsplit(standin.url).port
    finally:
        kubelets.close()
        standin.stop()


def forward(kubelet_port: int, pod_port: int) -> PortForward:
    """What kubernetes.stream.portforward makes of the API server's upgraded connection."""
    configuration = Configuration()
    configuration.verify_ssl = False
    url = f"wss://{NODE.address}:{kubelet_port}/portForward/ns/tgi-7d9c?port={pod_port}"
    return PortForward(create_websocket(configuration, url), [pod_port])


def test_http_through_the_kubelets_forward_reaches_the_pods_tgi(kubelet_and_tgi):
    kubelet_port, tgi_port = kubelet_and_tgi
    pf = forward(kubelet_port, tgi_port)
    connection = http.client.HTTPConnection("localhost", tgi_port, timeout=10)
    connection.sock = pf.socket(tgi_port)
    connection.request("GET", "/info")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["model_id"] == "example-org/tiny-chat"
    assert pf.error(tgi_port) is None
    pf.close()

    keyed = forward(kubelet_port, tgi_port)
    connection = http.client.HTTPConnection("localhost", tgi_port, timeout=10)
    connection.sock = keyed.socket(tgi_port)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer s3cret"}
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["usage"]["completion_tokens"] > 0
    keyed.close()


def test_a_port_the_pod_does_not_listen_on_gets_the_error_on_its_error_channel(kubelet_and_tgi):
    kubelet_port, _ = kubelet_and_tgi
    closed = socket.socket()
    closed.bind(("127.10.1.2", 0))
    unused = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    pf = forward(kubelet_port, unused)
    sock = pf.socket(unused)
    sock.settimeout(10)
    assert sock.recv(100) == b""  # the client closes the socket when the error arrives
    assert pf.error(unused) == forward_error(unused, UID, "Connection refused")


def test_an_unknown_protocol_is_refused_with_a_403_without_body(kubelet_and_tgi):
    kubelet_port, tgi_port = kubelet_and_tgi
    configuration = Configuration()
    configuration.verify_ssl = False
    url = f"wss://{NODE.address}:{kubelet_port}/portForward/ns/tgi-7d9c?port={tgi_port}"
    with pytest.raises(Exception, match=r"Handshake status 403 Forbidden") as error:
        create_websocket(configuration, url, {"sec-websocket-protocol": "channel.k8s.io"})
    # websocket-client's words: the status, the response's headers (none), its body (none).
    assert str(error.value) == "Handshake status 403 Forbidden -+-+- {} -+-+- None"
