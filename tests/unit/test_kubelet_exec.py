"""The simulated kubelet's exec: the WebSocket handshake and channel frames, and what nvidia-smi
and env print in a simulated container."""

from __future__ import annotations

import base64
import io
import json
from types import SimpleNamespace

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.gpu_check import (
    check_gpus,
    gpu_query_command,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import (
    GPU_QUERY_FIELDS,
    parse_gpu_csv,
    query_command,
)
from icc_sandbox.container_exec import (
    DRIVER_VERSION,
    ContainerView,
    container_env,
    expand,
    gpu_name,
    gpu_readings,
    gpu_slots,
    gpu_uuid,
    run_command,
)
from icc_sandbox.exec_stream import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    ExecOutput,
    ExecRefused,
    ExecRequest,
    accept_key,
    channel_frame,
    choose_protocol,
    encode_frame,
    handshake_response,
    is_websocket_upgrade,
    offered_protocols,
    read_frame,
    session_frames,
    status_payload,
)
from icc_sandbox.kubeapi import ApiError
from icc_sandbox.kubelet import exec_view
from icc_sandbox.nodes import NodeSpec, Timing
from kubernetes.stream.ws_client import WSClient

TGI = "ghcr.io/huggingface/text-generation-inference:3.3.0"
V100 = NodeSpec(
    "icc-gpu-v100-1", 0, "32", "192Gi", "gpu-tesla-v100", "Tesla-V100-PCIE-16GB", 4, 16, "7.0"
)
CPU = NodeSpec("icc-cpu-1", 3, "16", "64Gi")
START = 1_700_000_000.0
TIMING = Timing(tgi_ready_seconds=10)


def frames_of(data: bytes) -> list:
    reader = io.BytesIO(data)
    found = []
    while reader.tell() < len(data):
        found.append(read_frame(reader.read))
    return found


# --- the request and the handshake ------------------------------------------------------------


def test_the_request_reads_the_kubelets_and_the_apis_option_names():
    request = ExecRequest.parse(
        "/exec/ns/tgi-abc/tgi", "command=nvidia-smi&command=-L&output=1&error=1"
    )
    assert request == ExecRequest(
        "ns", "tgi-abc", "tgi", ("nvidia-smi", "-L"), False, True, True, False
    )
    direct = ExecRequest.parse("/exec/ns/p/uid-1/c", "command=env&stdout=1&tty=1&stderr=1")
    assert (direct.container, direct.stdout, direct.stderr, direct.tty) == ("c", True, False, True)


def test_a_request_without_streams_or_with_a_wrong_path_is_refused():
    with pytest.raises(ExecRefused) as error:
        ExecRequest.parse("/exec/ns/p/c", "command=env")
    assert error.value.status == 400
    assert str(error.value) == "you must specify at least 1 of stdin, stdout, stderr"
    with pytest.raises(ExecRefused) as error:
        ExecRequest.parse("/exec/ns/p", "command=env&output=1")
    assert error.value.status == 404


def test_accept_key_is_rfc_6455s_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    response = handshake_response("dGhlIHNhbXBsZSBub25jZQ==", "v4.channel.k8s.io").decode()
    assert response.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n" in response
    assert response.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Protocol" not in handshake_response("x", "").decode()


def test_the_first_offered_protocol_exec_knows_wins():
    # What the Python client offers: v5 first, which a 1.20 kubelet does not know.
    offered = offered_protocols(["v5.channel.k8s.io,v4.channel.k8s.io"])
    assert offered == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert choose_protocol(offered) == "v4.channel.k8s.io"
    assert choose_protocol(["base64.channel.k8s.io", "channel.k8s.io"]) == "base64.channel.k8s.io"
    assert choose_protocol([]) == ""
    with pytest.raises(ExecRefused) as error:
        choose_protocol(["v5.channel.k8s.io", "v3.channel.k8s.io"])
    assert error.value.status == 403
    assert "requested protocol(s) are not supported: [v5.channel.k8s.io v3.channel.k8s.io]" in str(
        error.value
    )


def test_only_an_upgrade_to_websocket_counts():
    assert is_websocket_upgrade({"Upgrade": "websocket", "Connection": "Upgrade"})
    assert is_websocket_upgrade({"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"})
    assert not is_websocket_upgrade({"Upgrade": "SPDY/3.1", "Connection": "Upgrade"})
    assert not is_websocket_upgrade({"Upgrade": "websocket", "Connection": "keep-alive"})


# --- frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_frames_round_trip_at_every_length_form(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    for mask in (None, b"\x01\x02\x03\x04"):
        frame = frames_of(encode_frame(OP_BINARY, payload, mask))[0]
        assert (frame.fin, frame.opcode, frame.payload) == (True, OP_BINARY, payload)
    head = encode_frame(OP_BINARY, payload)[:2]
    assert head[0] == 0x82 and head[1] & 0x80 == 0  # final, binary, a server's frame unmasked
    assert head[1] & 0x7F == (size if size < 126 else 126 if size < 65536 else 127)


def test_a_truncated_frame_is_the_end_of_the_connection():
    with pytest.raises(EOFError):
        read_frame(io.BytesIO(encode_frame(OP_BINARY, b"abcdef")[:-2]).read)


def test_channel_frames_binary_and_base64():
    binary = frames_of(channel_frame("v4.channel.k8s.io", 1, b"hi"))[0]
    assert (binary.opcode, binary.payload) == (OP_BINARY, b"\x01hi")
    text = frames_of(channel_frame("v4.base64.channel.k8s.io", 2, b"hi"))[0]
    assert (text.opcode, text.payload) == (OP_TEXT, b"2" + base64.b64encode(b"hi"))


def test_status_channel_json_for_v4_and_only_failures_before():
    request = ExecRequest("ns", "p", "c", ("nvidia-smi", "-x"), False, True, True, False)
    frames = frames_of(
        b"".join(session_frames("v4.channel.k8s.io", request, ExecOutput("out\n", "", 2)))
    )
    assert [f.payload[:1] for f in frames[:-1]] == [b"\x01", b"\x01", b"\x03"]
    assert frames[0].payload == b"\x01"  # the empty message that says the streams are open
    status = json.loads(frames[2].payload[1:])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]
    assert status["message"].endswith("[nvidia-smi -x], exit code 2")
    assert frames[-1].opcode == OP_CLOSE and frames[-1].payload == b"\x03\xe8"
    assert status_payload("channel.k8s.io", {"status": "Success"}) is None
    older = status_payload("channel.k8s.io", {"status": "Failure", "message": "boom"})
    assert older == b"boom"


def test_with_a_terminal_stderr_joins_stdout_with_crlf():
    request = ExecRequest("ns", "p", "c", ("env",), False, True, False, True)
    frames = frames_of(b"".join(session_frames("", request, ExecOutput("a\nb\n", "c\n"))))
    assert frames[1].payload == b"\x01a\r\nb\r\nc\r\n"
    assert frames[-2].opcode == OP_CLOSE or frames[-2].payload[:1] != b"\x02"


class _Replay:
    """What websocket-client's WebSocket offers WSClient, replaying recorded bytes."""

    def __init__(self, data: bytes) -> None:
        self._frames = frames_of(data)
        self.connected = True
        self.subprotocol = "v4.channel.k8s.io"
        self.sock = None

    def recv_data_frame(self, _control: bool):
        frame = self._frames.pop(0)
        return frame.opcode, SimpleNamespace(data=frame.payload)


def test_the_python_clients_reader_gets_output_and_exit_code(monkeypatch):
    """The bytes session_frames writes, read by kubernetes.stream's own WSClient.update."""
    request = ExecRequest("ns", "p", "c", ("sh",), False, True, True, False)
    data = b"".join(session_frames("v4.channel.k8s.io", request, ExecOutput("o", "e", 3)))
    replay = _Replay(data)
    monkeypatch.setattr("kubernetes.stream.ws_client.create_websocket", lambda *a: replay)
    client = WSClient(type("C", (), {})(), "wss://x", {}, capture_all=True)
    monkeypatch.setattr(client, "_frames_immediately_available", lambda: bool(replay._frames))
    monkeypatch.setattr("select.poll", _AlwaysReady)
    client.update(timeout=0)
    assert not client.is_open()
    assert (client.read_stdout(), client.read_stderr()) == ("o", "e")
    assert client.returncode == 3


class _AlwaysReady:
    def register(self, *_a):
        pass

    def unregister(self, *_a):
        pass

    def poll(self, *_a):
        return [(0, 1)]


# --- the simulated container -------------------------------------------------------------------


def tgi_pod(gpus: int, args: list[str], uid: str = "0f" * 16, ready_after: str = "10") -> dict:
    return {
        "metadata": {
            "name": "tgi-7d9c",
            "namespace": "wabc123-default",
            "uid": uid,
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "annotations": {"sandbox.haw.icc/ready-after-seconds": ready_after},
        },
        "spec": {
            "nodeName": V100.name,
            "containers": [
                {
                    "name": "tgi",
                    "image": TGI,
                    "args": args,
                    "env": [
                        {"name": "NCCL_DEBUG", "value": "WARN"},
                        {"name": "GREETING", "value": "$(NCCL_DEBUG) $$(NCCL_DEBUG) $(NONE)"},
                        {
                            "name": "API_KEY",
                            "valueFrom": {
                                "secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}
                            },
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                    ],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
        "status": {"phase": "Running", "podIP": "10.42.0.7"},
    }


def view_of(pod: dict, node: NodeSpec = V100, now: float = START + 60, busy: bool = False):
    container = pod["spec"]["containers"][0]
    slots = gpu_slots([pod], node).get((pod["metadata"]["uid"], "tgi"), ())
    secrets = {("secret", "wabc123-default", "tgi-api-key"): {"api-key": "s3cret"}}
    env = container_env(pod, container, node, slots, lambda *key: secrets.get(key), "10.96.0.1")
    return ContainerView(pod, container, node, START, now, TIMING, slots, env, busy)


QWEN_7B = ["--model-id", "Qwen/Qwen2.5-7B-Instruct", "--num-shard", "1"]


def test_the_api_tests_query_gives_one_row_per_gpu_and_check_gpus_passes():
    view = view_of(tgi_pod(2, QWEN_7B))
    done = run_command(gpu_query_command(), view)
    assert done.exit_code == 0 and done.runtime_error is None
    assert done.stdout.splitlines() == [
        "name, memory.total [MiB], driver_version",
        f"Tesla V100-PCIE-16GB, 16384, {DRIVER_VERSION}",
        f"Tesla V100-PCIE-16GB, 16384, {DRIVER_VERSION}",
    ]
    env = run_command(["env"], view)
    check = check_gpus(2, (0, done.stdout, ""), (env.exit_code, env.stdout, ""), 0.1)
    assert check.ok and "2 x GPU: Tesla V100-PCIE-16GB 16384 MiB" in check.detail
    assert f"driver {DRIVER_VERSION}" in check.detail and "NCCL_DEBUG=WARN" in check.detail


def test_units_and_header_follow_the_format_options():
    view = view_of(tgi_pod(1, QWEN_7B))
    fields = "index,memory.used,power.draw,temperature.gpu,fan.speed,gpu_name"
    with_units = run_command(["nvidia-smi", f"--query-gpu={fields}", "--format=csv"], view)
    header, row = with_units.stdout.splitlines()
    assert header == (
        "index, memory.used [MiB], power.draw [W], temperature.gpu, fan.speed [%], name"
    )
    cells = row.split(", ")
    assert cells[0] == "0" and cells[1].endswith(" MiB") and cells[2].endswith(" W")
    assert cells[4] == "[N/A]" and cells[5] == "Tesla V100-PCIE-16GB"
    bare = run_command(["nvidia-smi", "--query-gpu", fields, "--format=csv,noheader,nounits"], view)
    assert bare.stdout.splitlines() == [
        ", ".join(c.split(" ")[0] for c in cells[:5]) + ", " + cells[5]
    ]


def test_monitor_query_parses_with_numbers_in_range():
    view = view_of(tgi_pod(2, QWEN_7B), busy=True)
    gpus = parse_gpu_csv(run_command(query_command(), view).stdout)
    assert [g["index"] for g in gpus] == [0, 1]
    assert [list(g)[:-1] for g in gpus] == [list(GPU_QUERY_FIELDS)] * 2
    for gpu in gpus:
        assert 0 < gpu["memory.used"] < gpu["memory.total"] == 16384
        assert 60 <= gpu["utilization.gpu"] <= 100
        assert 0 < gpu["power.draw"] <= gpu["power.limit"] == 250
        assert 30 <= gpu["temperature.gpu"] <= 80
    assert gpus[0]["uuid"] != gpus[1]["uuid"]


def test_memory_follows_download_load_and_ready():
    """7B in bfloat16 (~14.2 GiB) spread over two V100s by one shard without flash attention."""
    pod = tgi_pod(2, QWEN_7B)
    during_download = [r["memory.used"] for r in gpu_readings(view_of(pod, now=START + 5))]
    loading = [r["memory.used"] for r in gpu_readings(view_of(pod, now=START + 9))]
    ready = [r["memory.used"] for r in gpu_readings(view_of(pod, now=START + 60))]
    assert during_download == [420, 420]
    assert 420 < loading[0] < ready[0]
    weights_per_gpu = 7e9 * 2 / 2**20 / 2
    assert weights_per_gpu < ready[0] < weights_per_gpu * 1.2 + 420


def test_idle_and_busy_figures_are_deterministic_and_differ():
    pod = tgi_pod(1, QWEN_7B)
    idle = gpu_readings(view_of(pod, now=START + 100))[0]
    assert idle == gpu_readings(view_of(pod, now=START + 100))[0]
    busy = gpu_readings(view_of(pod, now=START + 100, busy=True))[0]
    assert idle["utilization.gpu"] <= 2 and busy["utilization.gpu"] >= 60
    assert idle["power.draw"] < 40 and busy["power.draw"] >= 150


def test_gpus_are_handed_out_in_creation_order_per_node():
    first = tgi_pod(3, QWEN_7B, uid="01" * 16)
    second = tgi_pod(2, QWEN_7B, uid="02" * 16)
    second["metadata"]["creationTimestamp"] = "2023-11-14T22:20:00Z"
    done = tgi_pod(4, QWEN_7B, uid="00" * 16)
    done["status"]["phase"] = "Succeeded"
    slots = gpu_slots([second, done, first], V100)
    assert slots[("01" * 16, "tgi")] == (0, 1, 2)
    assert slots[("02" * 16, "tgi")] == (3,)  # only one left on a four-GPU node
    assert ("00" * 16, "tgi") not in slots
    view = view_of(second)
    env = dict(view.env)
    assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(gpu_uuid(V100, s) for s in view.gpu_slots)


def test_nvidia_smi_errors_and_list():
    view = view_of(tgi_pod(2, QWEN_7B))
    bad_field = run_command(["nvidia-smi", "--query-gpu=name,watts", "--format=csv"], view)
    assert (bad_field.exit_code, bad_field.stdout) == (
        2,
        'Field "watts" is not a valid field to query.\n\n',
    )
    for args in (["--bogus"], ["--query-gpu=name"], ["--query-gpu=name", "--format=xml"]):
        done = run_command(["nvidia-smi", *args], view)
        assert done.exit_code == 2 and "Invalid combination of input arguments" in done.stdout
    listed = run_command(["/usr/bin/nvidia-smi", "-L"], view).stdout.splitlines()
    assert listed[1] == f"GPU 1: Tesla V100-PCIE-16GB (UUID: {gpu_uuid(V100, 1)})"
    table = run_command(["nvidia-smi"], view).stdout
    assert f"Driver Version: {DRIVER_VERSION}" in table and table.count("Tesla V100-PCIE-16GB") == 2


def test_without_gpus_nvidia_smi_is_not_in_the_container():
    pod = tgi_pod(0, ["--model-id", "Qwen/Qwen2.5-0.5B-Instruct"])
    pod["spec"]["nodeName"] = CPU.name
    done = run_command(gpu_query_command(), view_of(pod, CPU))
    assert done.exit_code is None
    assert 'exec: "nvidia-smi": executable file not found in $PATH: unknown' in done.runtime_error
    assert "NVIDIA_VISIBLE_DEVICES=all" in run_command(["env"], view_of(pod, CPU)).stdout


def test_env_resolves_secrets_fields_and_references():
    env_text = run_command(["env"], view_of(tgi_pod(1, QWEN_7B))).stdout
    env = dict(line.split("=", 1) for line in env_text.splitlines())
    assert env["API_KEY"] == "s3cret"  # the Secret's value, as a real container sees it
    assert env["POD_IP"] == "10.42.0.7"
    assert env["GREETING"] == "WARN $(NCCL_DEBUG) $(NONE)"
    assert env["HOSTNAME"] == "tgi-7d9c" and env["HOME"] == "/root"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["PORT"] == "80"
    assert env["CUDA_VERSION"].startswith("12.4")
    assert next(iter(env)) == "PATH"


def test_printenv_env_with_a_command_and_unknown_programs():
    view = view_of(tgi_pod(1, QWEN_7B))
    assert run_command(["printenv", "NCCL_DEBUG"], view) == ExecOutput("WARN\n")
    assert run_command(["printenv", "NOPE"], view).exit_code == 1
    assert run_command(["env", "A=1", "printenv", "A"], view).stdout == "1\n"
    missing = run_command(["env", "ls"], view)
    assert (missing.exit_code, missing.stderr) == (127, "env: 'ls': No such file or directory\n")
    shell = run_command(["sh", "-c", "nvidia-smi"], view)
    assert shell.runtime_error.endswith('exec: "sh": executable file not found in $PATH: unknown')


def test_expand_and_gpu_name():
    assert expand("$(A)/$(B)/$$(A)", {"A": "x"}) == "x/$(B)/$(A)"
    assert gpu_name(V100) == "Tesla V100-PCIE-16GB"
    assert gpu_name(NodeSpec("n", 0, "1", "1Gi", "t", "NVIDIA-A100-SXM4-40GB")) == (
        "NVIDIA A100-SXM4-40GB"
    )


# --- the kubelet's lookups ---------------------------------------------------------------------


class FakeApi:
    """The admin API as exec_view reads it: pods by path, the node's pod list, one Secret."""

    def __init__(self, *pods: dict) -> None:
        self.pods = {
            f"/api/v1/namespaces/{p['metadata']['namespace']}/pods/{p['metadata']['name']}": p
            for p in pods
        }

    def get(self, path: str) -> dict:
        if path in self.pods:
            return self.pods[path]
        if path.startswith("/api/v1/pods?fieldSelector=spec.nodeName%3D"):
            return {"items": list(self.pods.values())}
        if path == "/api/v1/namespaces/wabc123-default/secrets/tgi-api-key":
            return {"data": {"api-key": base64.b64encode(b"from-api").decode()}}
        if path == "/api/v1/namespaces/default/services/kubernetes":
            return {"spec": {"clusterIP": "10.96.0.1"}}
        raise ApiError(404, "not found", "GET", path)


def running(pod: dict) -> dict:
    pod["status"] |= {
        "startTime": "2023-11-14T22:13:20Z",
        "containerStatuses": [{"name": "tgi", "state": {"running": {}}}],
    }
    return pod


def test_exec_view_finds_the_running_container_its_gpus_and_env():
    pod = running(tgi_pod(2, QWEN_7B))
    request = ExecRequest.parse("/exec/wabc123-default/tgi-7d9c/tgi", "command=env&output=1")
    busy_asked = []

    def busy(uid, container, now, recent):
        busy_asked.append((uid, container))
        return True

    view = exec_view(FakeApi(pod), V100, TIMING, request, START + 60, busy)
    assert (
        view.gpu_slots == (0, 1) and view.busy and busy_asked == [(pod["metadata"]["uid"], "tgi")]
    )
    assert ("API_KEY", "from-api") in view.env


def test_exec_view_refuses_as_the_kubelet_does():
    pod = tgi_pod(1, QWEN_7B)  # no running container yet
    api = FakeApi(pod)

    def refusal(path: str, node: NodeSpec = V100) -> tuple[int, str]:
        request = ExecRequest.parse(path, "command=env&output=1")
        with pytest.raises(ExecRefused) as error:
            exec_view(api, node, TIMING, request, START, lambda *a: False)
        return error.value.status, str(error.value)

    assert refusal("/exec/wabc123-default/nope/tgi") == (404, "pod does not exist")
    assert refusal("/exec/wabc123-default/tgi-7d9c/tgi", CPU) == (404, "pod does not exist")
    assert refusal("/exec/wabc123-default/tgi-7d9c/tgi") == (500, 'container not found ("tgi")')
    running(pod)
    assert refusal("/exec/wabc123-default/tgi-7d9c/other") == (500, 'container not found ("other")')
