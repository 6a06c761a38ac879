"""The collection as users get it: the built tarball, installed with its dependency into a
temporary path, run by name (`ansible-playbook haw.icc.deploy`) from an empty directory.

Nothing of the checkout is used here: no ansible.cfg, no link to the working tree, and Ansible
does not look at its own site-packages, so haw.icc and kubernetes.core can only come from the
temporary path.
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from views import FAST, SMALLER_MODEL, tgi_pod

from playbooks import REPO_ROOT, run_ansible, write_inventory

BIN = Path(sys.executable).parent
ISOLATED = {"ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}
DEVELOPMENT_FILES = (
    "ansible.cfg",
    ".ansible-lint",
    ".gitkeep",
    "inventories/sandbox/",
    "sandbox/",
    "tests/",
    "molecule/",
    "Makefile",
    "requirements.txt",
    "pyproject.toml",
    ".ci/",
    "playbooks/collections/",
)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out)]
    run = run_ansible([*build, str(REPO_ROOT)], cwd=out, config=None)
    assert run.rc == 0, run.output
    return next(out.glob("haw-icc-*.tar.gz"))


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory) -> Path:
    """A collections path holding the tarball's haw.icc and its dependency kubernetes.core
    (from the `ansible` package: there is no Galaxy to fetch it from)."""
    path = tmp_path_factory.mktemp("collections")
    spec = importlib.util.find_spec("ansible_collections.kubernetes.core")
    dependency = next(
        p for p in spec.submodule_search_locations if (Path(p) / "MANIFEST.json").exists()
    )
    install = [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(path)]
    run = run_ansible([*install, str(tarball), dependency], env=ISOLATED, cwd=path, config=None)
    assert run.rc == 0, run.output
    assert (path / "ansible_collections/kubernetes/core/MANIFEST.json").exists()
    return path


def test_the_tarball_holds_no_development_files_and_states_its_requirements(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        runtime = yaml.safe_load(archive.extractfile("meta/runtime.yml"))
        ee = yaml.safe_load(archive.extractfile("meta/execution-environment.yml"))
        requirements = archive.extractfile(ee["dependencies"]["python"]).read().decode()
    shipped = [
        name
        for name in names
        for dev in DEVELOPMENT_FILES
        if name == dev.rstrip("/") or name.startswith(dev) or name.endswith("/" + dev)
    ]
    assert shipped == []
    assert "playbooks/deploy.yml" in names and "roles/tgi_server/tasks/main.yml" in names
    assert runtime["requires_ansible"] == ">=2.19.0"
    for library in ("kubernetes", "huggingface_hub", "ruamel.yaml"):
        assert library in requirements


def test_without_its_dependency_the_install_says_what_is_missing(tarball, tmp_path):
    install = [
        str(BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "-p",
        str(tmp_path),
    ]
    run = run_ansible([*install, str(tarball)], env=ISOLATED, cwd=tmp_path, config=None)
    assert run.rc != 0
    assert "kubernetes.core" in run.output


@pytest.mark.sandbox
def test_deploy_and_render_by_name_from_an_empty_directory(
    installed, tmp_path, namespace, sandbox, core
):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "inventory").mkdir()
    inventory = write_inventory(
        tmp_path / "inventory", [namespace], sandbox.student_kubeconfig, **FAST
    )
    env = ISOLATED | {"ANSIBLE_COLLECTIONS_PATH": str(installed)}

    deploy = [str(BIN / "ansible-playbook"), "-i", str(inventory), "haw.icc.deploy"]
    run = run_ansible(
        [*deploy, "-e", "tgi_max_total_tokens=3000"], env=env, cwd=workdir, config=None
    )
    assert run.rc == 0, run.output
    assert tgi_pod(core, namespace).status.container_statuses[0].ready
    assert list(workdir.iterdir()) == []  # a deploy leaves nothing behind where it runs

    render = [str(BIN / "ansible-playbook"), "-i", str(inventory), "haw.icc.render"]
    # icc_idle_minutes: the proxy's script comes from the installed role's files.
    rendered = run_ansible([*render, "-e", "icc_idle_minutes=0.5"], env=env, cwd=workdir,
                           config=None)  # fmt: skip
    assert rendered.rc == 0, rendered.output
    manifests = {path.name for path in (workdir / "rendered" / namespace).iterdir()}
    assert "tgi_server-deployment.yml" in manifests and "open_webui-service.yml" in manifests
    proxy = (workdir / "rendered" / namespace / "tgi_server-idle_proxy.yml").read_text()
    assert "def main() -> int:" in proxy and '{name: IDLE_SECONDS, value: "30.0"}' in proxy
    # Nothing is written into the installed collection itself.
    assert not list(installed.rglob("rendered"))

    # Scale and switch by name too; the choices land beside the inventory, in a host_vars
    # folder that does not exist yet.
    playbook = [str(BIN / "ansible-playbook"), "-i", str(inventory)]
    scaled = run_ansible([*playbook, "haw.icc.scale", "-e", "tgi_gpu_count=2"], env=env,
                         cwd=workdir, config=None)  # fmt: skip
    assert scaled.rc == 0, scaled.output
    switched = run_ansible([*playbook, "haw.icc.change_model", "-e", f"tgi_model={SMALLER_MODEL}"],
                           env=env, cwd=workdir, config=None)  # fmt: skip
    assert switched.rc == 0, switched.output
    record = tmp_path / "inventory" / "host_vars" / f"{namespace}.yml"
    assert yaml.safe_load(record.read_text()) == {"tgi_gpu_count": 2, "tgi_model_id": SMALLER_MODEL}
    limits = tgi_pod(core, namespace).spec.containers[0].resources.limits
    assert limits["nvidia.com/gpu"] == "2"
    assert list(workdir.iterdir()) == [workdir / "rendered"]

    # The operating playbooks by name: what they write lands where they run, never in the
    # installed collection (a folder named "logs" there once shadowed haw.icc.logs).
    for name, options, written in (
        ("haw.icc.status", ["-e", "icc_status_file=status.json", "-e", "icc_status_html=c.html"],
         "status.json"),
        ("haw.icc.logs", ["-e", "icc_logs_dir=logs"], "logs"),
        ("haw.icc.monitor", ["-e", "icc_monitor_samples=1", "-e", "icc_monitor_dir=monitor"],
         "monitor"),
        ("haw.icc.test", [], None),
        ("haw.icc.access", [], None),
    ):  # fmt: skip
        run = run_ansible([*playbook, name, *options], env=env, cwd=workdir, config=None)
        assert run.rc == 0, run.output
        if written:
            assert (workdir / written).exists(), run.output
    assert "Course status" in (workdir / "c.html").read_text()  # the page, beside status.json
    assert not list((installed / "ansible_collections/haw/icc/playbooks").glob("*.json"))
    assert not (installed / "ansible_collections/haw/icc/playbooks/logs").exists()
    again = run_ansible([*playbook, "haw.icc.logs"], env=env, cwd=workdir, config=None)
    assert again.rc == 0, again.output

    # login.yml needs no inventory: the student's kubeconfig stands in for the portal's download.
    home = tmp_path / "home"
    home.mkdir()
    login = [
        str(BIN / "ansible-playbook"), "haw.icc.login", "--check",
        "-e", f"icc_login_kubeconfig={sandbox.student_kubeconfig}",
        "-e", f"icc_login_inventory={inventory}",
    ]  # fmt: skip
    logged = run_ansible(login, env=env | {"HOME": str(home)}, cwd=workdir, config=None)
    assert logged.rc == 0, logged.output
    assert f"Next: ansible-playbook -i {inventory} haw.icc.deploy --limit" in logged.output
    assert not (home / ".kube").exists()  # check mode


@pytest.mark.sandbox
def test_a_checkout_playbook_runs_from_another_directory(tmp_path, namespace, sandbox):
    """`cd /tmp && ansible-playbook -i ~/haw-icc/inventories/... ~/haw-icc/playbooks/status.yml`:
    no ansible.cfg is read there and Ansible's collections path (an empty folder here, instead
    of ~/.ansible/collections) does not hold haw.icc; kubernetes.core comes from site-packages
    as for a user. The playbook still resolves the collection, its module_defaults group
    haw.icc.k8s too."""
    workdir, empty = tmp_path / "elsewhere", tmp_path / "no-collections"
    workdir.mkdir()
    empty.mkdir()
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig)
    status = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        str(REPO_ROOT / "playbooks" / "status.yml"),
    ]
    run = run_ansible(
        status, env={"ANSIBLE_COLLECTIONS_PATH": str(empty)}, cwd=workdir, config=None
    )
    assert run.rc == 0, run.output
    assert "could not resolve" not in run.output
    assert f"{namespace}" in run.output and "ABSENT" in run.output
