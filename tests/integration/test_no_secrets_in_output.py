"""No secret in the output of any playbook, not even with -vvv (and --diff where it applies).

One namespace and the playbooks in the order a user runs them, every run given the same known
secrets on the command line: TGI's API key and Hugging Face token, Open WebUI's session key and
first admin's password. The kubeconfig's bearer token is the fifth. None of them may appear in
stdout or stderr, as written or base64-encoded (how Secrets carry them).
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

import pytest
import yaml
from views import FAST

from playbooks import REPO_ROOT, command_line_vars, run_ansible, run_playbook, write_inventory


def forms(value: str) -> set[str]:
    """The value and its base64 (padded or not), as a Secret's data or a log line shows it."""
    encoded = base64.b64encode(value.encode()).decode()
    return {value, encoded, encoded.rstrip("=")}


def stored(core, namespace: str) -> dict[str, str]:
    """The one value of each Secret of the namespace, decoded."""
    return {
        secret.metadata.name: base64.b64decode(next(iter(secret.data.values()))).decode()
        for secret in core.list_namespaced_secret(namespace).items
        if secret.type == "Opaque" and secret.data
    }


@pytest.mark.sandbox
def test_no_playbook_prints_a_secret_even_with_vvv(tmp_path, namespace, sandbox, core):
    known = {
        "tgi_api_key": f"key{secrets.token_hex(12)}",
        "tgi_hf_token": f"hf_{secrets.token_hex(12)}",
        "open_webui_secret_key": f"sess{secrets.token_hex(12)}",
        "open_webui_admin_password": f"pw{secrets.token_hex(12)}",
    }
    rotated = f"rot{secrets.token_hex(12)}"  # a new API key shown to --check --diff only
    kubeconfig = yaml.safe_load(sandbox.student_kubeconfig.read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    wanted = {**known, "rotated tgi_api_key": rotated, "kubeconfig token": token}

    inventory = write_inventory(
        tmp_path,
        [namespace],
        sandbox.student_kubeconfig,
        open_webui_admin_email="admin@example.com",
        **FAST,
    )
    given = dict(known)
    steps = [
        ("deploy.yml", (), {}),
        ("deploy.yml", ("--check", "--diff"), {"tgi_api_key": rotated}),
        ("change_model.yml", ("--diff",), {"tgi_model": "Qwen/Qwen2.5-0.5B-Instruct"}),
        ("scale.yml", ("--diff",), {"tgi_gpu_count": 2}),
        ("test.yml", (), {}),
        ("status.yml", (), {}),
        ("logs.yml", (), {"icc_logs_tail": 20}),
        ("access.yml", (), {}),
        ("cleanup.yml", (), {}),
        ("cleanup.yml", (), {"purge": True}),
    ]
    outputs = {}
    for number, (playbook, options, extra) in enumerate(steps):
        run = run_playbook(
            playbook, inventory, "-vvv", *options, extra_vars={**given, **extra}, cwd=tmp_path
        )
        assert run.rc == 0, f"{playbook} {options}:\n{run.output[-4000:]}"
        outputs[f"{number}: {playbook} {' '.join(options)}"] = run.output
        if number == 0:  # the values reached the cluster: the runs did handle them
            assert stored(core, namespace) == {
                "tgi-api-key": known["tgi_api_key"],
                "tgi-hf-token": known["tgi_hf_token"],
                "open-webui-secret-key": known["open_webui_secret_key"],
                "open-webui-admin": known["open_webui_admin_password"],
            }

    # login.yml installs the downloaded kubeconfig (its token) into a kubeconfig of this test.
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "--diff"]
    argv += command_line_vars(
        {
            "icc_login_kubeconfig": str(sandbox.student_kubeconfig),
            "icc_login_dest": str(tmp_path / "kube" / "config"),
            "icc_login_inventory": str(tmp_path / "login-inventory"),
            "icc_namespace": namespace,
        }
    )
    argv.append(str(REPO_ROOT / "playbooks" / "login.yml"))
    login = run_ansible(argv, cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert login.rc == 0, login.output[-4000:]
    outputs["login.yml --diff"] = login.output

    # -vvv prints every task's result in full, the typed role variables among them: where a
    # secret is missing from such output, it was hidden.
    assert '"settings": {' in outputs["0: deploy.yml "]

    leaks = [
        f"{run}: {name}"
        for run, output in outputs.items()
        for name, value in wanted.items()
        if any(form in output for form in forms(value))
    ]
    assert leaks == []
