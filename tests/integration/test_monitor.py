"""monitor.yml against the sandbox: two namespaces sampled in one run, a CSV and a PNG each."""

from __future__ import annotations

import csv
import re
import stat
from pathlib import Path

import pytest
from views import FAST

from playbooks import REPO_ROOT, run_playbook, write_inventory

RECORDED_CSV = REPO_ROOT / "tests" / "unit" / "data" / "nvidia_smi_v100.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_COLUMNS = {"time", "gpu_name"}
GPU_COLUMNS = (
    "gpu",
    "utilization_percent",
    "memory_used_mib",
    "memory_total_mib",
    "temperature_c",
    "power_w",
)


@pytest.fixture
def recorded_nvidia_smi(tmp_path) -> Path:
    """A local stand-in for nvidia-smi in the pod: prints the recorded V100 CSV."""
    script = tmp_path / "nvidia-smi-recorded.sh"
    script.write_text(f"#!/bin/sh\ncat '{RECORDED_CSV}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def monitor(inventory: Path, samples: int, cwd: Path | None = None, **settings: str):
    """monitor.yml with one second between samples, settings as -e icc_monitor_<name>=..."""
    extra_vars = {"icc_monitor_interval": "1", "icc_monitor_samples": str(samples)}
    extra_vars.update({f"icc_monitor_{name}": value for name, value in settings.items()})
    return run_playbook("monitor.yml", inventory, extra_vars=extra_vars, cwd=cwd or REPO_ROOT)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def only_file(directory: Path, namespace: str, suffix: str) -> Path:
    found = sorted(directory.glob(f"{namespace}-*{suffix}"))
    assert len(found) == 1, (namespace, suffix, sorted(p.name for p in directory.iterdir()))
    assert re.fullmatch(rf"{re.escape(namespace)}-\d{{8}}T\d{{6}}Z{suffix}", found[0].name)
    return found[0]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), path
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.sandbox
def test_monitor_two_namespaces_writes_csv_and_png_each(
    tmp_path, sandbox, namespace, second_namespace, recorded_nvidia_smi
):
    namespaces = [namespace, second_namespace]
    inventory = write_inventory(tmp_path, namespaces, sandbox.student_kubeconfig, **FAST)
    deployed = run_playbook("deploy.yml", inventory)
    assert deployed.rc == 0, deployed.output

    out = tmp_path / "monitor out"  # a folder that does not exist yet, with a space
    run = monitor(inventory, 3, dir=str(out), gpu_command=str(recorded_nvidia_smi))
    assert run.rc == 0, run.output
    for name in namespaces:
        for number in (1, 2, 3):
            assert f"[{name}] sample {number}/3: GPU0 87% 14.5/16.0 GiB" in run.output
        csv_path = only_file(out, name, ".csv")
        png_path = only_file(out, name, ".png")
        assert str(csv_path) in run.output and str(png_path) in run.output

        rows = read_csv(csv_path)
        assert len(rows) == 3 * 2  # three samples of the recorded two GPUs
        assert [row["gpu"] for row in rows] == ["0", "1"] * 3
        for row in rows:
            for column, cell in row.items():
                if column not in TEXT_COLUMNS and cell != "":
                    float(cell)  # a plain number, no unit
            for column in GPU_COLUMNS:
                assert row[column] != "", (column, row)
            # TGI's gauges come from /metrics through the API server's service proxy.
            assert row["tgi_queue_size"] != "" and row["tgi_batch_size"] != "", row
        assert float(rows[0]["memory_used_mib"]) == 14813
        assert float(rows[-1]["seconds"]) >= 2
        assert "Not read" not in run.output
        assert_png(png_path)


@pytest.mark.sandbox
def test_exec_samples_the_pods_gpus_and_a_failing_source_is_said_once(tmp_path, sandbox, namespace):
    """Without icc_monitor_gpu_command nvidia-smi runs in the TGI pod through exec (the API
    server, then the node's kubelet): a row per GPU the pod holds, with numbers. A failing GPU
    command (nvidia-smi without a driver) leaves TGI's columns only and is said once."""
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    deployed = run_playbook("deploy.yml", inventory)
    assert deployed.rc == 0, deployed.output

    exec_out = tmp_path / "exec"
    run = monitor(inventory, 2, dir=str(exec_out))
    assert run.rc == 0, run.output
    assert "GPU figures" not in run.output, run.output
    for number in (1, 2):
        assert re.search(
            rf"\[{re.escape(namespace)}\] sample {number}/2: GPU0 \d+% [\d.]+/16\.0 GiB \d+ C "
            r"\d+ W; TGI queue 0",
            run.output,
        ), run.output
    rows = read_csv(only_file(exec_out, namespace, ".csv"))
    assert [row["gpu"] for row in rows] == ["0", "0"]  # the deployment's one GPU, twice
    for row in rows:
        assert row["gpu_name"] == "Tesla V100-PCIE-16GB", row
        for column in GPU_COLUMNS:
            float(row[column])  # a number in every GPU column
        assert 0 < float(row["memory_used_mib"]) < float(row["memory_total_mib"]) == 16384
        assert float(row["power_limit_w"]) == 250
        assert row["tgi_queue_size"] == "0", row
    assert_png(only_file(exec_out, namespace, ".png"))

    broken = tmp_path / "nvidia-smi-no-driver.sh"
    broken.write_text(
        "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the "
        'NVIDIA driver."\nexit 9\n'
    )
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    # Without icc_monitor_dir the files go where ansible-playbook runs.
    run = monitor(inventory, 2, cwd=tmp_path, gpu_command=str(broken))
    assert run.rc == 0, run.output
    said = f"GPU figures: command {broken} failed (exit status 9: NVIDIA-SMI has failed"
    assert run.output.count(said) == 2, run.output  # once while sampling, once in the summary
    assert "TGI metrics only" in run.output
    assert f"[{namespace}] sample 2/2: no GPU figures; TGI queue 0" in run.output
    rows = read_csv(only_file(tmp_path, namespace, ".csv"))
    assert len(rows) == 2
    for row in rows:
        assert all(row[column] == "" for column in GPU_COLUMNS), row
        assert row["tgi_queue_size"] != "", row
    assert_png(only_file(tmp_path, namespace, ".png"))


@pytest.mark.sandbox
def test_bad_monitor_settings_are_refused_before_sampling(tmp_path, sandbox):
    inventory = write_inventory(tmp_path, ["wabc123-default"], sandbox.student_kubeconfig)
    out = tmp_path / "never"
    run = run_playbook(
        "monitor.yml",
        inventory,
        extra_vars={
            "icc_monitor_interval": "0",
            "icc_monitor_samples": "twelve",
            "icc_monitor_dir": str(out),
        },
    )
    assert run.rc != 0
    assert "- icc_monitor_interval: '0' is not allowed: at least 1" in run.output
    assert "- icc_monitor_samples: 'twelve' is not an integer" in run.output
    assert "sample 1/" not in run.output
    assert not out.exists()


@pytest.mark.sandbox
def test_a_gpu_command_that_does_not_exist_is_refused_before_sampling(tmp_path, sandbox):
    inventory = write_inventory(tmp_path, ["wabc123-default"], sandbox.student_kubeconfig)
    missing = tmp_path / "no-such-script.sh"
    run = run_playbook(
        "monitor.yml",
        inventory,
        extra_vars={"icc_monitor_gpu_command": str(missing), "icc_monitor_dir": str(tmp_path)},
    )
    assert run.rc != 0
    assert f"gpu_command: {missing} is not an executable file or on PATH" in run.output
    assert "sample 1/" not in run.output
    assert not list(tmp_path.glob("wabc123-default-*"))


@pytest.mark.sandbox
def test_check_mode_samples_nothing_and_writes_nothing(tmp_path, sandbox):
    inventory = write_inventory(tmp_path, ["wabc123-default"], sandbox.student_kubeconfig)
    out = tmp_path / "check"
    run = run_playbook(
        "monitor.yml",
        inventory,
        "--check",
        extra_vars={"icc_monitor_samples": "2", "icc_monitor_dir": str(out)},
    )
    assert run.rc == 0, run.output
    assert "check mode: would sample namespace wabc123-default 2 times every 5 s" in run.output
    assert run.total_changed() == 0
    assert not out.exists()
