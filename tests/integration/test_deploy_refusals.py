"""An unreachable cluster, an unpinned image, and manifests that validate.

Bad values typed by users: test_bad_values.py; connections: test_connections.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from views import FAST

from playbooks import run_playbook, write_inventory


@pytest.mark.sandbox
def test_unreachable_cluster_gives_a_readable_message(tmp_path, namespace, sandbox):
    config = yaml.safe_load(sandbox.student_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    run = run_playbook("deploy.yml", write_inventory(tmp_path, [namespace], unreachable, **FAST))
    assert run.rc != 0
    assert "cannot reach the cluster at https://127.0.0.1:1" in run.output
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_an_unpinned_image_is_accepted_with_a_warning(tmp_path, namespace, sandbox):
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    image = "ghcr.io/huggingface/text-generation-inference:latest"
    run = run_playbook("deploy.yml", inventory, "--check", extra_vars={"tgi_image": image})
    assert run.rc == 0, run.output
    assert "is not pinned to a version" in run.output


def test_rendered_manifests_validate_for_kubernetes_1_25_and_the_newest(tmp_path):
    """The manifests of the example ICC inventory, rendered without a cluster."""
    from playbooks import REPO_ROOT

    out = tmp_path / "rendered"
    run = run_playbook(
        "render.yml",
        REPO_ROOT / "inventories" / "icc" / "hosts.yml",
        extra_vars={"icc_render_dir": str(out)},
    )
    assert run.rc == 0, run.output
    # The example inventory sets (and comments) only variables the collection reads.
    assert "unknown variable" not in run.output, run.output
    manifests = sorted(out.glob("*/*.yml"))
    kinds = {yaml.safe_load(path.read_text())["kind"] for path in manifests}
    assert kinds == {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"}
    for path in manifests:
        for version in ("1.25", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(yaml.safe_load(path.read_text()), version, strict=True)
