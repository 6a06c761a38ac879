"""Installing a downloaded kubeconfig beside the user's own (kubeconfig, kubeconfig_file)
and adding its namespace to a YAML inventory (inventory_host's round trip)."""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from ansible_collections.haw.icc.plugins.module_utils.cluster import kubeconfig as km
from ansible_collections.haw.icc.plugins.module_utils.workload.inventory_files import (
    holds_host,
    inventory_file,
    with_host,
)

TOKEN = "portal-token-0123456789abcdef"
OTHER_TOKEN = "lab-token-fedcba9876543210"


def downloaded(token: str = TOKEN, namespace: str | None = None) -> dict:
    """A kubeconfig as the ICC portal hands it out: one cluster, user and context."""
    context = {"cluster": "icc", "user": "infwabc123"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "icc", "cluster": {"server": "https://icc.invalid:6443"}},
        ],
        "users": [{"name": "infwabc123", "user": {"token": token}}],
        "contexts": [{"name": "infwabc123@icc", "context": context}],
        "current-context": "infwabc123@icc",
    }


def existing() -> dict:
    """A user's own kubeconfig for another (made-up) cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": "https://lab.invalid:6443"}}],
        "users": [{"name": "me", "user": {"token": OTHER_TOKEN}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}],
        "current-context": "lab",
    }


# --- pure logic ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("login", "namespace"),
    [
        ("infwabc123", "wabc123-default"),
        ("infaxy987", "axy987-default"),
        ("wabc123", None),  # no "inf": staff or course logins have other namespaces
        ("inf", None),
        ("infWABC123", None),
        (None, None),
    ],
)
def test_a_student_login_gives_its_namespace(login, namespace):
    assert km.namespace_for_login(login) == namespace


def test_the_namespace_given_wins_then_the_login_then_the_context():
    context = {"name": "c", "context": {"cluster": "icc", "user": "infwabc123", "namespace": "x"}}
    assert km.choose_namespace("course-ml", None, context) == ("course-ml", "given")
    assert km.choose_namespace(None, None, context) == (
        "wabc123-default",
        "from the login infwabc123",
    )
    assert km.choose_namespace(None, "infwxyz999", context)[0] == "wxyz999-default"
    context["context"]["user"] = "lecturer"
    assert km.choose_namespace(None, None, context) == ("x", "from the kubeconfig's context")
    del context["context"]["namespace"]
    with pytest.raises(km.KubeconfigProblem, match="-e icc_namespace"):
        km.choose_namespace(None, None, context)


def test_the_context_is_the_one_asked_for_else_the_current_else_the_only_one():
    config = downloaded()
    assert km.choose_context(config, None, "f")["name"] == "infwabc123@icc"
    config["contexts"].append(
        {"name": "other", "context": {"cluster": "icc", "user": "infwabc123"}}
    )
    assert km.choose_context(config, "other", "f")["name"] == "other"
    with pytest.raises(km.KubeconfigProblem, match="no context 'nope'; it has infwabc123@icc, "):
        km.choose_context(config, "nope", "f")
    config["current-context"] = ""
    with pytest.raises(km.KubeconfigProblem, match="several contexts and no current one"):
        km.choose_context(config, None, "f")


def test_a_context_whose_user_is_missing_is_refused():
    config = downloaded()
    config["users"] = []
    with pytest.raises(km.KubeconfigProblem, match="uses the user 'infwabc123', which the file"):
        km.choose_context(config, None, "f")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("just text", "holds no mapping"),
        ({"kind": "Pod"}, "its kind is 'Pod'"),
        ({"clusters": {"icc": {}}}, "clusters is not a list"),
        ({"users": [{"user": {}}]}, "entry 1 of users has no name"),
        ({"contexts": [{"name": "a", "context": {}}, {"name": "a", "context": {}}]}, "'a' twice"),
        ({"clusters": [{"name": "icc", "cluster": "https://x"}]}, "no cluster mapping"),
    ],
)
def test_broken_kubeconfigs_are_named_as_such(data, problem):
    assert any(problem in line for line in km.kubeconfig_problems(data, "f"))


def test_a_good_kubeconfig_has_no_problems():
    assert km.kubeconfig_problems(downloaded(), "f") == []
    assert km.kubeconfig_problems(existing(), "f") == []


def test_into_no_file_the_download_is_added_and_made_current():
    result = km.merge(None, downloaded(), "infwabc123@icc", "wabc123-default", None)
    assert result.added == ["cluster icc", "user infwabc123", "context infwabc123@icc"]
    assert result.changed and result.current_context == "infwabc123@icc"
    assert result.config["contexts"][0]["context"]["namespace"] == "wabc123-default"
    assert km.kubeconfig_problems(result.config, "merged") == []


def test_other_clusters_users_and_contexts_are_kept_and_the_current_context_too():
    before = existing()
    result = km.merge(before, downloaded(), "infwabc123@icc", "wabc123-default", None)
    assert [e["name"] for e in result.config["contexts"]] == ["lab", "infwabc123@icc"]
    assert result.config["clusters"][0] == existing()["clusters"][0]
    assert result.config["users"][0] == existing()["users"][0]
    assert result.config["current-context"] == "lab" and not result.current_changed
    assert before == existing()  # the caller's data is not changed


def test_use_context_true_or_false_overrides_the_default():
    made_current = km.merge(existing(), downloaded(), "infwabc123@icc", "ns", True)
    assert made_current.config["current-context"] == "infwabc123@icc"
    assert made_current.current_changed
    left = km.merge(None, downloaded(), "infwabc123@icc", "ns", False)
    assert left.config["current-context"] == "" and not left.current_changed


def test_merging_the_same_download_again_changes_nothing():
    first = km.merge(existing(), downloaded(), "infwabc123@icc", "wabc123-default", None)
    again = km.merge(first.config, downloaded(), "infwabc123@icc", "wabc123-default", None)
    assert not again.changed
    assert again.unchanged == ["cluster icc", "user infwabc123", "context infwabc123@icc"]
    assert again.config == first.config


def test_the_same_name_with_other_content_is_replaced_in_place():
    first = km.merge(existing(), downloaded(), "infwabc123@icc", "wabc123-default", None).config
    renewed = km.merge(
        first, downloaded("renewed-token"), "infwabc123@icc", "wabc123-default", None
    )
    assert renewed.replaced == ["user infwabc123"]
    assert renewed.unchanged == ["cluster icc", "context infwabc123@icc"]
    assert [e["name"] for e in renewed.config["users"]] == ["me", "infwabc123"]
    assert renewed.config["users"][1]["user"]["token"] == "renewed-token"
    # another namespace for the same context is a change of that context only
    moved = km.merge(first, downloaded(), "infwabc123@icc", "course-ml", None)
    assert moved.replaced == ["context infwabc123@icc"]


def test_relative_file_references_become_absolute_from_the_downloaded_file():
    config = downloaded()
    config["clusters"][0]["cluster"]["certificate-authority"] = "ca.crt"
    config["users"][0]["user"] = {"client-certificate": "certs/me.crt", "client-key": "/abs/me.key"}
    result = km.absolute_paths(config, "/home/s/Downloads")
    assert result["clusters"][0]["cluster"]["certificate-authority"] == "/home/s/Downloads/ca.crt"
    assert result["users"][0]["user"] == {
        "client-certificate": "/home/s/Downloads/certs/me.crt",
        "client-key": "/abs/me.key",
    }
    assert config["clusters"][0]["cluster"]["certificate-authority"] == "ca.crt"


def test_secrets_are_masked_with_numbers_that_show_a_change():
    masker = km.Masker()
    before = copy.deepcopy(existing())
    before["clusters"][0]["cluster"]["certificate-authority-data"] = "LS0tLS1CRUdJTi"
    after = km.merge(before, downloaded(), "infwabc123@icc", "ns", None).config
    shown = yaml.safe_dump([masker(before), masker(after)])
    for secret in (TOKEN, OTHER_TOKEN, "LS0tLS1CRUdJTi"):
        assert secret not in shown
    masked_before, masked_after = masker(before), masker(after)
    assert masked_before["users"][0]["user"]["token"] == masked_after["users"][0]["user"]["token"]
    assert masked_after["users"][1]["user"]["token"] != masked_after["users"][0]["user"]["token"]
    assert km.secret_values(after) == {TOKEN, OTHER_TOKEN, "LS0tLS1CRUdJTi"}


# --- the action ----------------------------------------------------------------------------------


@pytest.fixture
def install(run_action):
    def run(check_mode=False, diff=False, **args):
        result = run_action("kubeconfig_install", args, check_mode=check_mode, diff=diff)
        result.setdefault("failed", False)
        result["output"] = json.dumps(result)
        return result

    return run


def write_yaml(path: Path, data, mode=0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    path.chmod(mode)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def backups(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f"{dest.name}.*.bak"))


def test_a_new_kubeconfig_gets_a_private_directory_and_file_and_no_backup(tmp_path, install):
    src = write_yaml(tmp_path / "Downloads" / "kubeconfig.yaml", downloaded())
    dest = tmp_path / "home" / ".kube" / "config"
    result = install(src=str(src), dest=str(dest))
    assert result["changed"] and not result["failed"]
    assert (result["namespace"], result["context"]) == ("wabc123-default", "infwabc123@icc")
    assert mode(dest) == 0o600 and mode(dest.parent) == 0o700
    assert backups(dest) == [] and "backup_file" not in result
    written = yaml.safe_load(dest.read_text())
    assert written["current-context"] == "infwabc123@icc"
    assert written["contexts"][0]["context"]["namespace"] == "wabc123-default"


def test_an_existing_kubeconfig_is_kept_backed_up_once_and_a_second_run_changes_nothing(
    tmp_path, install
):
    src = write_yaml(tmp_path / "kubeconfig.yaml", downloaded())
    dest = write_yaml(tmp_path / ".kube" / "config", existing(), mode=0o644)
    original = dest.read_text()
    first = install(src=str(src), dest=str(dest))
    assert first["changed"] and first["added"] and first["current_context"] == "lab"
    [backup] = backups(dest)
    assert str(backup) == first["backup_file"]
    assert backup.read_text() == original and mode(backup) == 0o600
    assert mode(dest) == 0o600
    written = yaml.safe_load(dest.read_text())
    assert written["contexts"][0] == existing()["contexts"][0]
    assert written["users"][0] == existing()["users"][0]

    second = install(src=str(src), dest=str(dest))
    assert not second["changed"] and "already holds" in second["msg"]
    assert backups(dest) == [backup]


def test_a_renewed_token_replaces_the_user_and_the_backup_has_the_old_one(tmp_path, install):
    dest = tmp_path / "config"
    install(src=str(write_yaml(tmp_path / "old.yaml", downloaded())), dest=str(dest))
    result = install(src=str(write_yaml(tmp_path / "new.yaml", downloaded("t2"))), dest=str(dest))
    assert result["replaced"] == ["user infwabc123"] and result["changed"]
    assert yaml.safe_load(dest.read_text())["users"][0]["user"]["token"] == "t2"
    [backup] = backups(dest)
    assert yaml.safe_load(backup.read_text())["users"][0]["user"]["token"] == TOKEN
    assert TOKEN not in result["output"] and "t2" not in result["msg"]


def test_only_a_wrong_mode_is_fixed_without_a_backup(tmp_path, install):
    src = write_yaml(tmp_path / "kubeconfig.yaml", downloaded())
    dest = tmp_path / "config"
    install(src=str(src), dest=str(dest))
    dest.chmod(0o644)
    result = install(src=str(src), dest=str(dest))
    assert result["changed"] and "mode set to 0600" in result["msg"]
    assert mode(dest) == 0o600 and backups(dest) == []


def test_check_mode_writes_nothing_and_the_diff_shows_no_secret(tmp_path, install):
    src = write_yaml(tmp_path / "kubeconfig.yaml", downloaded())
    dest = write_yaml(tmp_path / ".kube" / "config", existing())
    original = dest.read_text()
    result = install(check_mode=True, diff=True, src=str(src), dest=str(dest))
    assert result["changed"] and result["msg"].startswith("check mode: would change")
    assert dest.read_text() == original and mode(dest) == 0o644 and backups(dest) == []
    assert "infwabc123@icc" in result["diff"]["after"]
    assert "namespace: wabc123-default" in result["diff"]["after"]
    assert "<hidden value" in result["diff"]["after"]
    assert TOKEN not in result["output"] and OTHER_TOKEN not in result["output"]


def test_a_relative_certificate_path_is_made_absolute_in_the_installed_file(tmp_path, install):
    config = downloaded()
    config["clusters"][0]["cluster"]["certificate-authority"] = "icc-ca.crt"
    src = write_yaml(tmp_path / "Downloads" / "kubeconfig.yaml", config)
    dest = tmp_path / ".kube" / "config"
    install(src=str(src), dest=str(dest))
    cluster = yaml.safe_load(dest.read_text())["clusters"][0]["cluster"]
    assert cluster["certificate-authority"] == str(tmp_path / "Downloads" / "icc-ca.crt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("clusters: [\n", "is not YAML (line 2)"),
        ("just a line of text\n", "is not a kubeconfig: it holds no mapping"),
        (yaml.safe_dump({"apiVersion": "v1", "kind": "Config"}), "has no context"),
        (
            yaml.safe_dump(downloaded() | {"users": []}),
            "uses the user 'infwabc123', which the file does not hold",
        ),
    ],
)
def test_a_bad_download_is_refused_and_nothing_is_written(tmp_path, install, content, message):
    src = write_yaml(tmp_path / "kubeconfig.yaml", content)
    dest = write_yaml(tmp_path / ".kube" / "config", existing())
    original = dest.read_text()
    result = install(src=str(src), dest=str(dest))
    assert result["failed"] and message in result["msg"]
    assert dest.read_text() == original and backups(dest) == []


def test_every_problem_is_reported_at_once_one_line_each(tmp_path, install):
    dest = tmp_path / ".kube" / "config"
    result = install(
        src=str(tmp_path / "missing.yaml"),
        dest=str(dest),
        namespace="Not_A_Label",
        use_context="maybe",
    )
    lines = result["msg"].splitlines()
    assert len(lines) == 3
    assert "missing.yaml does not exist" in lines[0]
    assert "namespace 'Not_A_Label' is not a valid name" in lines[1]
    assert "use_context 'maybe' is not a boolean" in lines[2]
    assert not dest.parent.exists()


def test_a_broken_target_kubeconfig_is_left_alone(tmp_path, install):
    src = write_yaml(tmp_path / "kubeconfig.yaml", downloaded())
    dest = write_yaml(tmp_path / "config", "contexts: {oops: 1}\n")
    result = install(src=str(src), dest=str(dest))
    assert result["failed"] and "contexts is not a list; it is left as it is" in result["msg"]
    assert dest.read_text() == "contexts: {oops: 1}\n"


def test_use_context_spellings(tmp_path, install):
    src = write_yaml(tmp_path / "kubeconfig.yaml", downloaded())
    dest = write_yaml(tmp_path / "config", existing())
    assert install(src=str(src), dest=str(dest), use_context="")["current_context"] == "lab"
    made = install(src=str(src), dest=str(dest), use_context="yes")
    assert made["current_context"] == "infwabc123@icc" and made["changed"]


# --- the inventory's round trip (inventory_host) -------------------------------------------------

SHIPPED = """\
---
# One host per namespace on the ICC.
all:
  children:
    students:
      hosts:
        wdef456-default:   # Bob
"""


def test_a_new_host_joins_its_group_and_comments_stay():
    after = with_host(SHIPPED, "wabc123-default", "students")
    assert after.startswith("---\n# One host per namespace on the ICC.\n")
    assert "wdef456-default:   # Bob\n" in after
    assert "        wabc123-default:\n" in after
    assert "null" not in after
    assert holds_host(yaml.safe_load(after), "wabc123-default")


def test_a_host_anywhere_in_the_inventory_is_not_added_again():
    assert with_host(SHIPPED, "wdef456-default", "teachers") is None
    assert with_host("all:\n  hosts:\n    wabc123-default:\n", "wabc123-default", "x") is None


def test_a_missing_group_is_made_a_child_of_all_and_all_takes_hosts_itself():
    after = yaml.safe_load(with_host(SHIPPED, "course-ml", "courses"))
    assert after["all"]["children"]["courses"] == {"hosts": {"course-ml": None}}
    flat = yaml.safe_load(with_host("all:\n  hosts:\n    a-default:\n", "b-default", "all"))
    assert flat == {"all": {"hosts": {"a-default": None, "b-default": None}}}


def test_a_new_inventory_file_gets_a_header():
    after = with_host("", "wabc123-default", "students")
    assert after.startswith("---\n# One host per namespace")
    assert yaml.safe_load(after) == {
        "all": {"children": {"students": {"hosts": {"wabc123-default": None}}}}
    }


def test_an_inventory_that_is_no_mapping_is_refused():
    with pytest.raises(ValueError, match="mapping of groups"):
        with_host("- a\n- b\n", "wabc123-default", "students")


def test_the_inventory_file_of_a_directory_or_a_file(tmp_path):
    assert inventory_file(tmp_path) == tmp_path / "hosts.yml"
    (tmp_path / "hosts.yaml").write_text("all: {}\n")
    assert inventory_file(tmp_path) == tmp_path / "hosts.yaml"
    assert inventory_file(tmp_path / "mine.yml") == tmp_path / "mine.yml"
    ini = tmp_path / "hosts.ini"
    ini.write_text("[students]\nwabc123-default\n")
    with pytest.raises(ValueError, match="not a YAML inventory"):
        inventory_file(ini)
    assert os.path.isfile(ini)
