"""The part of a running TGI pod that a change of settings owns (workload/tgi_pod_spec.py): read
from the live Deployment, compared with what tgi_workload gives, and the JSON patch between them.

The live Deployment is written out by hand (switch_fakes.live_deployment), as the API server
returns it after deploy.yml.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import (
    SwitchRefused,
    annotation_ops,
    find_container,
    live_spec,
    normalize_env,
    same_spec,
    shm_volume,
    spec_view,
    switch_patch,
    wanted_spec,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import NCCL_ENV_DEFAULTS
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    tgi_workload,
)
from switch_fakes import (
    IMAGE,
    LIVE_ARGS,
    LIVE_ENV,
    NEW_MODEL,
    SETTINGS,
    SHARDING_MODEL,
    live_deployment,
    with_model,
)


def spec(**fields: Any) -> dict[str, Any]:
    """A spec as live_spec and wanted_spec give it, empty where not given."""
    empty = {"image": IMAGE, "args": [], "env": [], "resources": {}, "tolerations": [],
             "shm_size": None, "annotations": {}}  # fmt: skip
    return {**empty, **fields}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ([{"name": "A", "value": ""}], [{"name": "A"}]),  # the server drops empty values
        ([{"name": "PORT", "value": 80}], [{"name": "PORT", "value": "80"}]),
        ([{"name": "A", "value": None, "valueFrom": None}], [{"name": "A"}]),
        (
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": False}},
                }
            ],
            [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        (
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
                }
            ],
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
                }
            ],
        ),
        (
            [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            [
                {
                    "name": "POD",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                }
            ],
        ),
        (None, []),
    ],
)
def test_env_is_compared_as_the_api_server_stores_it(given, stored):
    assert normalize_env(given) == stored


@pytest.mark.parametrize(
    ("live", "wanted", "same"),
    [
        (
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            True,
        ),
        (
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            spec(args=["--model-id", "b"], env=LIVE_ENV),
            False,
        ),
        # Order matters: the launcher reads flags in order, env may refer to earlier entries.
        (spec(args=["--a", "1", "--b", "2"]), spec(args=["--b", "2", "--a", "1"]), False),
        (spec(env=LIVE_ENV), spec(env=list(reversed(LIVE_ENV))), False),
        (
            spec(env=[{"name": "PORT", "value": "80"}]),
            spec(env=[{"name": "PORT", "value": 80}]),
            True,
        ),
        # Amounts by value: the API server stores 0.5 CPU as 500m and 1024Mi as 1Gi.
        (
            spec(resources={"requests": {"cpu": "500m", "memory": "1Gi"}}),
            spec(resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}}),
            True,
        ),
        (
            spec(resources={"requests": {"nvidia.com/gpu": "1"}}),
            spec(resources={"requests": {"nvidia.com/gpu": "2"}}),
            False,
        ),
        (spec(shm_size="1Gi"), spec(shm_size="1024Mi"), True),
        (spec(shm_size="1Gi"), spec(shm_size="2Gi"), False),
        (spec(), spec(image="ghcr.io/huggingface/text-generation-inference:3.3.1"), False),
        (
            spec(),
            spec(tolerations=[{"key": "gpu-tesla-v100", "operator": "Exists"}]),
            False,
        ),
        (spec(annotations={"a": "1"}), spec(annotations={"a": "2"}), False),
    ],
)
def test_same_spec_compares_every_owned_part(live, wanted, same):
    assert same_spec(live, wanted) is same


def test_the_role_settings_give_exactly_the_live_pod():
    """tgi_workload is the one source: unchanged settings must not look like a change."""
    deployment = live_deployment()
    live = live_spec(deployment, find_container(deployment, "tgi")[1])
    wanted = wanted_spec(tgi_workload(SETTINGS))
    assert wanted["args"] == LIVE_ARGS
    assert same_spec(live, wanted)


@pytest.mark.parametrize(
    ("args", "model"),
    [
        (["--model-id", "org/m", "--num-shard", "1"], "org/m"),
        (["--num-shard", "1", "--model-id=org/m"], "org/m"),
        (["--num-shard", "1"], None),
        (["--model-id"], None),
        (None, None),
    ],
)
def test_flag_value_reads_the_model_id_flag(args, model):
    assert flag_value(args, "--model-id") == model


@pytest.mark.parametrize(
    ("resources", "gpus"),
    [
        ({"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}, 2),
        ({"requests": {"cpu": "2"}}, 0),
        ({}, 0),
        ({"limits": {"nvidia.com/gpu": "1"}}, 1),  # request defaults to the limit
    ],
)
def test_container_gpus(resources, gpus):
    assert container_gpus({"resources": resources}) == gpus


def test_switch_patch_tests_the_version_and_the_container_then_writes_what_differs():
    deployment = live_deployment()
    wanted = wanted_spec(tgi_workload({**SETTINGS, "tgi_model_id": NEW_MODEL}))
    patch = switch_patch("4711", deployment, 0, wanted)
    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "tgi"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/args",
            "value": ["--model-id", NEW_MODEL, *LIVE_ARGS[2:]],
        },
    ]


def test_switch_patch_for_more_gpus_writes_resources_args_env_and_shm():
    deployment = live_deployment()
    wanted = wanted_spec(tgi_workload(with_model(SHARDING_MODEL, tgi_gpu_count=2)))
    ops = {op["path"].rsplit("/", 1)[-1]: op for op in switch_patch("1", deployment, 0, wanted)}
    assert ops["args"]["value"][:4] == ["--model-id", SHARDING_MODEL, "--num-shard", "2"]
    assert ops["resources"]["value"]["limits"]["nvidia.com/gpu"] == "2"
    assert {e["name"] for e in ops["env"]["value"]} >= set(NCCL_ENV_DEFAULTS)
    assert ops["sizeLimit"] == {
        "op": "replace",
        "path": "/spec/template/spec/volumes/1/emptyDir/sizeLimit",
        "value": "2Gi",
    }
    assert "tolerations" not in ops  # the same GPU type


def test_switch_patch_adds_missing_fields_and_removes_emptied_ones():
    deployment = live_deployment(gpus=None)  # on CPU: no tolerations
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["args"]
    wanted = wanted_spec(tgi_workload(SETTINGS))
    wanted["env"] = []
    patch = switch_patch("1", deployment, 0, wanted)
    assert {"op": "add", "path": "/spec/template/spec/containers/0/args",
            "value": LIVE_ARGS} in patch  # fmt: skip
    assert {"op": "remove", "path": "/spec/template/spec/containers/0/env"} in patch
    assert {"op": "add", "path": "/spec/template/spec/tolerations",
            "value": wanted["tolerations"]} in patch  # fmt: skip


def test_a_missing_container_is_refused_naming_the_containers():
    with pytest.raises(SwitchRefused, match=r"no container named 'server' \(its containers: tgi\)"):
        find_container(live_deployment(), "server")


@pytest.mark.parametrize(
    ("live", "wanted", "ops"),
    [
        # No annotations yet: the map is added in one operation.
        (
            None,
            {"haw.icc/secret-versions": "k=1"},
            [("add", "", {"haw.icc/secret-versions": "k=1"})],
        ),
        # Others are left alone; ours is replaced, with '/' escaped in the pointer.
        (
            {"keep": "me", "haw.icc/secret-versions": "k=1"},
            {"haw.icc/secret-versions": "k=2"},
            [("replace", "/haw.icc~1secret-versions", "k=2")],
        ),
        ({"keep": "me"}, {"a/b": "x"}, [("add", "/a~1b", "x")]),
        ({"a/b": "x"}, {"a/b": None}, [("remove", "/a~1b", None)]),
        ({"a/b": "x"}, {"a/b": "x"}, []),  # already so: nothing to write
    ],
)
def test_annotation_ops_touch_only_the_managed_annotations(live, wanted, ops):
    metadata = {"labels": {"app": "tgi"}} | ({"annotations": live} if live is not None else {})
    deployment = {"spec": {"template": {"metadata": metadata}}}
    base = "/spec/template/metadata/annotations"
    assert annotation_ops(deployment, wanted) == [
        {"op": op, "path": base + path, **({} if value is None else {"value": value})}
        for op, path, value in ops
    ]


def test_the_diff_view_leads_with_the_model_and_the_gpus_and_stores_env_as_the_server_does():
    view = spec_view(
        spec(
            args=["--model-id", "org/m", "--num-shard", "2"],
            env=[{"name": "PORT", "value": 80}],
            resources={"limits": {"nvidia.com/gpu": "2"}},
        )
    )
    assert list(view)[:2] == ["model_id", "gpus"]
    assert (view["model_id"], view["gpus"]) == ("org/m", 2)
    assert view["env"] == [{"name": "PORT", "value": "80"}]
    assert "annotations" not in view  # none managed: nothing to show
    assert spec_view(spec(annotations={"a": "1"}))["annotations"] == {"a": "1"}


def test_the_shm_volume_is_found_by_its_name():
    # live_deployment's volumes, by hand: [cache (a PVC), shm (emptyDir, Memory, 1Gi)]
    assert shm_volume(live_deployment()) == (1, {"medium": "Memory", "sizeLimit": "1Gi"})
    assert shm_volume({"spec": {"template": {"spec": {"volumes": [{"name": "shm"}]}}}}) == (0, {})
    assert shm_volume({"spec": {"template": {"spec": {}}}}) == (None, {})
    assert shm_volume({}) == (None, {})


def test_the_same_spec_patches_nothing_but_its_two_tests():
    deployment = live_deployment()
    patch = switch_patch("7", deployment, 0, wanted_spec(tgi_workload(SETTINGS)))
    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "tgi"},
    ]


def test_a_pod_without_an_shm_volume_gets_no_size_written():
    deployment = live_deployment()
    del deployment["spec"]["template"]["spec"]["volumes"]
    wanted = wanted_spec(tgi_workload(with_model(SHARDING_MODEL, tgi_gpu_count=2)))
    paths = [op["path"] for op in switch_patch("1", deployment, 0, wanted)]
    assert not [path for path in paths if "/volumes" in path]
    assert "/spec/template/spec/containers/0/resources" in paths


def test_live_spec_reads_only_the_managed_annotations():
    deployment = live_deployment()
    deployment["spec"]["template"]["metadata"] = {
        "annotations": {"keep": "me", "haw.icc/secret-versions": "k=1"}
    }
    container = find_container(deployment, "tgi")[1]
    annotations = live_spec(deployment, container, ("haw.icc/secret-versions", "absent"))
    assert annotations["annotations"] == {"haw.icc/secret-versions": "k=1", "absent": None}
    assert live_spec(deployment, container)["annotations"] == {}


def test_tolerations_are_compared_without_the_nulls_the_server_drops():
    toleration = {"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}
    assert same_spec(
        spec(tolerations=[toleration]), spec(tolerations=[{**toleration, "value": None}])
    )


def test_annotation_pointers_escape_tilde_and_slash_as_rfc_6901_says():
    # RFC 6901, section 3: '~' is written '~0' and '/' is written '~1' in a JSON pointer.
    deployment = {"spec": {"template": {"metadata": {"annotations": {"keep": "me"}}}}}
    assert annotation_ops(deployment, {"a~b/c": "x"}) == [
        {"op": "add", "path": "/spec/template/metadata/annotations/a~0b~1c", "value": "x"}
    ]
