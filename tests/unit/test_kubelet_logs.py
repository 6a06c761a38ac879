"""The simulated kubelet's pod logs: TGI's lines derived from pod, node and time, and the query."""

from __future__ import annotations

import datetime
import ipaddress
import re

import pytest
from icc_sandbox.container_logs import (
    LogLine,
    LogQuery,
    LogsUnavailable,
    args_debug,
    container_lines,
    container_run,
    render,
    weight_files,
)
from icc_sandbox.container_spec import launch_outcome
from icc_sandbox.kubeapi import ApiError
from icc_sandbox.kubelet import pod_logs
from icc_sandbox.node_agent import assign_pod_ips
from icc_sandbox.nodes import NodeSpec, Timing, iso
from icc_sandbox.pod_simulation import simulate_pod
from icc_sandbox.tgi_launcher import launcher_values

TGI = "ghcr.io/huggingface/text-generation-inference:3.3.0"
V100 = NodeSpec("icc-gpu-v100-1", 0, "32", "192Gi", "gpu-tesla-v100", "V100", 4, 16, "7.0")
TIMING = Timing(tgi_ready_seconds=5, crash_after_seconds=1, backoff_seconds=10)
START = 1_700_000_000.0
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def tgi_pod(args: list[str], gpus: int = 1, env=(), **annotations: str) -> dict:
    return {
        "metadata": {
            "name": "tgi-7d9f",
            "namespace": "ns",
            "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
            "annotations": {
                f"sandbox.haw.icc/{k.replace('_', '-')}": v for k, v in annotations.items()
            },
        },
        "spec": {
            "nodeName": V100.name,
            "containers": [
                {
                    "name": "tgi",
                    "image": TGI,
                    "args": args,
                    "env": list(env),
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
        "status": {"startTime": iso(START)},
    }


def texts(pod: dict, seconds: float, previous: bool = False) -> list[str]:
    container = pod["spec"]["containers"][0]
    now = START + seconds
    run = container_run(pod, container, V100, START, now, TIMING, previous)
    return [line.text for line in container_lines(pod, container, V100, run, now, TIMING)]


SEVEN_B = ["--model-id", "Qwen/Qwen2.5-7B-Instruct", "--num-shard", "1"]


def test_a_download_advances_file_by_file_in_tgis_words():
    pod = tgi_pod(SEVEN_B, ready_after_seconds="60")
    early, later = texts(pod, 10), texts(pod, 35)  # each of 3 files takes about 16 s
    assert later[: len(early)] == early  # the log only grows
    progress = [t for t in later if "Download: [" in t]
    assert [re.sub(f"^{STAMP}  INFO text_generation_launcher: ", "", t) for t in progress] == [
        "Download: [1/3] -- ETA: 0:00:30",
        "Download: [2/3] -- ETA: 0:00:15.500000",  # TGI's timedelta arithmetic, as printed
    ]
    assert not any("Download: [" in t for t in early)
    assert early[-1].endswith("Download file: model-00001-of-00003.safetensors")
    folder = "/data/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/"
    assert any(
        re.fullmatch(
            f"{STAMP}  INFO text_generation_launcher: Downloaded {folder}[0-9a-f]{{40}}/"
            r"model-00001-of-00003\.safetensors in 0:00:15\.",
            t,
        )
        for t in later
    )
    assert f"{later[0][:27]}  INFO text_generation_launcher: Args {{" == later[0]
    assert not any("Connected" in t for t in later)


def test_a_ready_tgi_ends_with_the_router_connected_and_the_same_lines_every_time():
    pod = tgi_pod(SEVEN_B, ready_after_seconds="60")
    lines = texts(pod, 61)
    assert lines == texts(pod, 61)  # derived: an agent restart serves the same log
    assert lines[-1].endswith(
        "  INFO text_generation_router::server: router/src/server.rs:2302: Connected"
    )
    assert any(t.endswith("Download: [3/3] -- ETA: 0") for t in lines)
    assert any(
        re.search(r"shard-manager: text_generation_launcher: Shard ready in [\d.]+s rank=0$", t)
        for t in lines
    )
    assert any("GPU with CUDA capability 7 0 is not supported" in t for t in lines)
    assert not any("Connected" in t for t in texts(pod, 59))


def test_small_models_come_in_one_file_big_ones_in_shards_of_about_5_gb():
    assert weight_files("Qwen/Qwen2.5-1.5B-Instruct") == ["model.safetensors"]
    files = weight_files("meta-llama/Llama-2-13b-chat-hf")  # 26 GB in bfloat16
    assert files[0] == "model-00001-of-00006.safetensors" and len(files) == 6


def test_a_bad_flag_crash_loops_with_claps_text_in_the_previous_logs():
    pod = tgi_pod(["--model-id", "org/m-1b", "--max-parallel-loading-workers", "2"])
    with pytest.raises(LogsUnavailable) as refused:
        texts(pod, 0.5, previous=True)  # still the first run: nothing terminated yet
    assert refused.value.status == 400 and "previous terminated container" in str(refused.value)
    previous = texts(pod, 12, previous=True)  # second run running, the first one ended
    assert previous[0] == "error: unexpected argument '--max-parallel-loading-workers' found"
    assert "For more information, try '--help'." in previous
    assert texts(pod, 5) == previous  # in back-off the current logs are the ended run's


def test_an_oom_ends_with_cudas_message_then_the_shard_failure():
    pod = tgi_pod(["--model-id", "meta-llama/Llama-2-13b-chat-hf"], ready_after_seconds="5")
    lines = texts(pod, 6)  # crashed after loading, in back-off
    oom = next(i for i, t in enumerate(lines) if "CUDA out of memory" in t)
    assert lines[oom].startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ")
    assert re.fullmatch(
        f"{STAMP} ERROR text_generation_launcher: Shard 0 failed to start", lines[oom + 2]
    )
    assert lines[-1] == "Error: ShardCannotStart"
    assert not any("sandbox estimate" in t for t in lines)
    restart = texts(pod, 16, previous=False)  # the second run finds the files in its cache
    assert any("Files are already present on the host. Skipping download." in t for t in restart)


def test_a_run_that_ended_wrote_every_line_by_its_end():
    # A 13B download is 80 % of a 2 s start-up (1.6 s); the loading lines 0.5 s later would fall
    # after the kill at 2.0 s. A process writes nothing once dead: the kubelet must show the OOM
    # lines the instant the status says terminated (CI saw them missing 2 s in).
    pod = tgi_pod(["--model-id", "meta-llama/Llama-2-13b-chat-hf"], ready_after_seconds="2")
    ended = texts(pod, 2.0 + 1e-6)  # just after the end, in back-off
    assert any("CUDA out of memory" in t for t in ended)
    assert ended[-1] == "Error: ShardCannotStart"


def test_sharding_without_flash_attention_fails_like_tgi():
    lines = texts(
        tgi_pod(["--model-id", "meta-llama/Llama-2-7b-chat-hf", "--num-shard", "2"], gpus=2), 2
    )
    assert any("Sharding model on 2 processes" in t for t in lines)
    # TGI 3.3.7 models/__init__.py:1017 names the model_type: f"Sharded {model_type}".
    assert "NotImplementedError: Sharded llama requires Flash Attention enabled models." in lines


def test_a_gated_model_without_a_token_fails_its_download():
    args = ["--model-id", "meta-llama/Llama-3.2-3B-Instruct", "--num-shard", "1"]
    pod = tgi_pod(args, simulate="gated")
    lines = texts(pod, 2, previous=True)
    assert any(
        t.endswith("ERROR download: text_generation_launcher: Download encountered an error: ")
        for t in lines
    )
    assert any(
        t.startswith("huggingface_hub.errors.GatedRepoError: 401 Client Error.") for t in lines
    )
    assert any(
        t.startswith("Cannot access gated repo for url https://huggingface.co/meta-llama/")
        for t in lines
    )
    assert lines[-1] == "Error: DownloadError"
    container = pod["spec"]["containers"][0]
    assert not launch_outcome(container, V100, pod).ok
    token = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]
    with_token = tgi_pod(args, env=token, simulate="gated")
    assert launch_outcome(with_token["spec"]["containers"][0], V100, with_token).ok


def test_the_argument_dump_is_rusts_pretty_debug():
    values = launcher_values(["--quantize", "bitsandbytes-nf4", "--cuda-graphs", "1,2"], {})
    dump = args_debug(values).split("\n")
    assert dump[0] == "Args {" and dump[-1] == "}"
    at = dump.index("    quantize: Some(")
    assert dump[at : at + 3] == ["    quantize: Some(", "        BitsandbytesNf4,", "    ),"]
    at = dump.index("    cuda_graphs: Some(")
    assert dump[at + 1 : at + 6] == [
        "        [",
        "            1,",
        "            2,",
        "        ],",
        "    ),",
    ]
    assert '    model_id: "bigscience/bloom-560m",' in dump
    masked = args_debug(launcher_values(["--api-key", "s3cret"], {}))
    assert "s3cret" not in masked


def test_open_webui_logs_uvicorn_starting_on_its_port():
    pod = tgi_pod([])
    pod["spec"]["containers"][0] = {
        "name": "open-webui",
        "image": "ghcr.io/open-webui/open-webui:v0.6.5",
    }
    lines = texts(pod, 5)
    assert "INFO:     Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)" in lines
    assert texts(pod, 0.1) == []


# --- the query ------------------------------------------------------------------------------------

LINES = [LogLine(START + i, f"line {i}") for i in range(10)]


def test_tail_since_and_limit_bytes_work_like_the_kubelets():
    now = START + 10
    assert render(LINES, LogQuery(tail_lines=2), now) == b"line 8\nline 9\n"
    assert render(LINES, LogQuery(tail_lines=0), now) == b""
    assert render(LINES, LogQuery(since_seconds=3), now) == b"line 7\nline 8\nline 9\n"
    since = LogQuery.parse("sinceTime=" + iso(START + 8))
    assert render(LINES, since, now) == b"line 8\nline 9\n"
    assert render(LINES, LogQuery(limit_bytes=9), now) == b"line 0\nli"
    stamped = render(LINES, LogQuery(tail_lines=1, timestamps=True), now).decode()
    assert stamped == datetime.datetime.fromtimestamp(START + 9, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ line 9\n"
    )


def test_the_query_is_parsed_as_the_api_server_sends_it():
    query = LogQuery.parse("follow=true&previous=true&tailLines=5&sinceSeconds=30&timestamps=true")
    assert query == LogQuery(
        previous=True, timestamps=True, follow=True, tail_lines=5, since_seconds=30
    )
    with pytest.raises(ValueError, match="tailLines"):
        LogQuery.parse("tailLines=many")


# --- the kubelet's answers ------------------------------------------------------------------------


class PodsApi:
    def __init__(self, *pods: dict) -> None:
        self.pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}

    def get(self, path: str) -> dict:
        _, _, _, namespace, _, name = path.strip("/").split("/")
        if (namespace, name) not in self.pods:
            raise ApiError(404, "not found", "GET", path)
        return self.pods[(namespace, name)]


def test_the_kubelet_answers_404_for_pods_and_containers_it_does_not_run():
    pod = tgi_pod(SEVEN_B)
    api = PodsApi(pod)
    body = pod_logs(api, V100, TIMING, "/containerLogs/ns/tgi-7d9f/tgi", "tailLines=1", START + 9)
    assert body.decode().endswith("Connected\n") and body.count(b"\n") == 1
    for path, status, text in (
        ("/containerLogs/ns/other/tgi", 404, 'pod "ns/other" does not exist'),
        ("/containerLogs/ns/tgi-7d9f/sidecar", 404, 'container "sidecar" not found'),
        ("/exec/ns/tgi-7d9f/tgi", 404, "404 page not found"),
    ):
        with pytest.raises(LogsUnavailable) as refused:
            pod_logs(api, V100, TIMING, path, "", START + 9)
        assert (refused.value.status, text in str(refused.value)) == (status, True)
    other_node = NodeSpec("icc-gpu-v100-2", 1, "32", "192Gi")
    with pytest.raises(LogsUnavailable, match="does not exist"):
        pod_logs(api, other_node, TIMING, "/containerLogs/ns/tgi-7d9f/tgi", "", START + 9)


# --- pod addresses --------------------------------------------------------------------------------


def test_pod_ips_in_the_pod_network_are_stable_and_never_shared():
    node = NodeSpec("n", 0, "32", "192Gi", pod_network="10.201.0.0/16")
    pods = [tgi_pod(SEVEN_B) for _ in range(3)]
    for i, pod in enumerate(pods):
        pod["metadata"]["uid"] = "same-uid" if i < 2 else "other"
        pod["spec"]["nodeName"] = "n"
        del pod["status"]
    assign_pod_ips(pods, {"n": node})
    ips = [pod["status"]["podIP"] for pod in pods]
    assert len(set(ips)) == 3  # the second pod with the same derived IP got another
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.201.0.0/16") for ip in ips)
    assert ips[0] == node.pod_ip("same-uid")
    view = simulate_pod(pods[1], node, START, START + 1, TIMING)
    assert view.status["podIP"] == ips[1]  # the status keeps it: a restart changes nothing
