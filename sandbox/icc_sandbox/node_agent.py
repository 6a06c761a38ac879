"""The node agent: plays the kubelets of the simulated ICC nodes (the KWOK idea, in Python).

There is no kubelet and no container runtime in the sandbox. This agent registers the nodes of
a data file, keeps them Ready with heartbeats, writes the status of pods bound to them through
`pods/status`, finishes deleted pods, and provisions PersistentVolumes for the default
StorageClass. What a container "does" is chosen by its image:

- TGI: the launcher's start-up is simulated (icc_sandbox.tgi_launcher): bad arguments crash-loop
  with TGI's message, a model too big for the GPUs the pod got is OOMKilled, a valid one becomes
  Ready after a delay (download and load) if its probes aim at what TGI serves. While it is Ready,
  a TGI stand-in (icc_sandbox.tgi_standin) answers on podIP:port with the model the launcher
  would load, so tests can ask a pod what it serves;
- Open WebUI: in a namespace labelled for it, the real Open WebUI runs (process_runtime) and
  its probe decides; elsewhere Ready after a short delay if its probes aim at port 8080 (or
  $PORT), with a health stand-in;
- anything else: runs and is Ready.

With a pod network it also plays kube-proxy and cluster DNS (service_network).

Every status is derived from the pod and its start time alone, so the agent can restart and the
pods it already ran keep their state; the stand-ins are started again from the pods.

The shared types are in icc_sandbox.nodes, the pure simulation in container_spec and
pod_simulation, the stand-ins in stand_ins; the process's entry point is node_agent_main.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from icc_sandbox.kubeapi import STRATEGIC_MERGE_PATCH, ApiError, KubeApi
from icc_sandbox.nodes import GPU_RESOURCE, JSON, NodeSpec, Timing, iso, parse_iso
from icc_sandbox.pod_simulation import simulate_pod, status_differs, with_transition_times
from icc_sandbox.process_runtime import ProcessRuntime
from icc_sandbox.service_network import ServiceNetwork
from icc_sandbox.stand_ins import StandIns, served_apps

log = logging.getLogger("node-agent")

STORAGE_PROVISIONER = "sandbox.haw.icc/local"
KUBELET_VERSION = "v1.20.2"


class NodeAgent:
    def __init__(
        self,
        api: KubeApi,
        nodes: Iterable[NodeSpec],
        timing: Timing,
        kubelet_ports: dict[str, int] | None = None,
        work_dir: Path | None = None,
        network: ServiceNetwork | None = None,
        runtime: ProcessRuntime | None = None,
    ) -> None:
        self.api = api
        self.volumes_dir = (work_dir or Path(tempfile.gettempdir()) / "haw-icc-agent") / "volumes"
        # The simulated kube-proxy and cluster DNS, and the real Open WebUI (None: not here)
        self.network = network
        self.runtime = runtime
        self.nodes = {node.name: node for node in nodes}
        self.timing = timing
        self.kubelet_ports = kubelet_ports or {}
        self.posted_events: set[str] = set()
        self.last_heartbeat = 0.0
        self.started_at = time.time()
        networks = {node.pod_network for node in self.nodes.values() if node.pod_network}
        self.standins = StandIns(api, sorted(networks))

    def close(self) -> None:
        """Stops what the agent serves and runs; the pods keep their status."""
        self.standins.close()
        if self.runtime is not None:
            self.runtime.close()
        if self.network is not None:
            self.network.close()

    # nodes
    def register_nodes(self) -> None:
        for node in self.nodes.values():
            body = {
                "metadata": {"name": node.name, "labels": node_labels(node)},
                "spec": node_spec(node),
            }
            self.api.ensure("/api/v1/nodes", body)
            self.api.patch(f"/api/v1/nodes/{node.name}", body)
        self.heartbeat(time.time())

    def heartbeat(self, now: float) -> None:
        for node in self.nodes.values():
            self.api.patch(
                f"/api/v1/nodes/{node.name}/status",
                {
                    "status": node_status(
                        node, now, self.started_at, self.kubelet_ports.get(node.name)
                    )
                },
                STRATEGIC_MERGE_PATCH,
            )
        self.last_heartbeat = now

    # pods
    def sync_pods(self, now: float) -> None:
        pods = self.api.get("/api/v1/pods?fieldSelector=spec.nodeName%21%3D").get("items", [])
        running = set()
        assign_pod_ips(pods, self.nodes)
        for pod in pods:
            node = self.nodes.get(pod["spec"].get("nodeName", ""))
            if node is None:
                continue
            if not pod["metadata"].get("deletionTimestamp"):
                running.add(pod["metadata"]["uid"])
            try:
                self.sync_pod(pod, node, now)
            except ApiError as error:
                if error.status not in (404, 409):  # gone or changed meanwhile: next round
                    log.warning(
                        "pod %s/%s: %s",
                        pod["metadata"]["namespace"],
                        pod["metadata"]["name"],
                        error,
                    )
        self.standins.keep_only(running)
        if self.runtime is not None:
            self.runtime.keep_only(running)

    def sync_pod(self, pod: JSON, node: NodeSpec, now: float) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if meta.get("deletionTimestamp"):
            # What a kubelet confirms after the container stopped; without it a Recreate
            # rollout would wait forever for the old pod to go.
            self.standins.serve(pod, {})
            if self.runtime is not None:
                self.runtime.stop_pod(meta["uid"])
            self.api.delete(path, {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
            log.info("finished deleted pod %s/%s", meta["namespace"], meta["name"])
            return
        current = pod.get("status", {})
        started = parse_iso(current["startTime"]) if current.get("startTime") else float(int(now))
        live = self.runtime.live(pod, node, now) if self.runtime is not None else {}
        view = simulate_pod(pod, node, started, now, self.timing, live)
        # Before the status says Ready, so whoever sees Ready finds the stand-in answering.
        self.standins.serve(pod, served_apps(pod, node, view, live))
        if status_differs(current, view.status):
            body = {
                "metadata": {"uid": meta["uid"]},
                "status": with_transition_times(current, view.status, now),
            }
            self.api.patch(f"{path}/status", body, STRATEGIC_MERGE_PATCH)
        for event in view.events:
            self.post_event(pod, node, event, now)

    def post_event(self, pod: JSON, node: NodeSpec, event: JSON, now: float) -> None:
        meta = pod["metadata"]
        name = f"{meta['name']}.{meta['uid'][:8]}.{event['container']}.{event['reason'].lower()}"
        if name in self.posted_events:
            return
        body = {
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "fieldPath": f"spec.containers{{{event['container']}}}",
            },
            "reason": event["reason"],
            "message": event["message"],
            "type": event["type"],
            "source": {"component": "kubelet", "host": node.name},
            "firstTimestamp": iso(now),
            "lastTimestamp": iso(now),
            "count": 1,
        }
        try:
            self.api.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except ApiError as error:
            if error.status not in (409, 403, 404):
                raise
        self.posted_events.add(name)

    # volumes
    def sync_volumes(self) -> None:
        """A provisioner for the sandbox's StorageClass: a PV per pending claim, freed with it."""
        classes = self.api.get("/apis/storage.k8s.io/v1/storageclasses").get("items", [])
        ours = {
            c["metadata"]["name"] for c in classes if c.get("provisioner") == STORAGE_PROVISIONER
        }
        for claim in self.api.get("/api/v1/persistentvolumeclaims").get("items", []):
            spec, meta = claim["spec"], claim["metadata"]
            if spec.get("storageClassName") not in ours or spec.get("volumeName"):
                continue
            if claim.get("status", {}).get("phase") != "Pending":
                continue
            self.api.ensure("/api/v1/persistentvolumes", persistent_volume(claim, self.volumes_dir))
            log.info("provisioned a volume for %s/%s", meta["namespace"], meta["name"])
        for volume in self.api.get("/api/v1/persistentvolumes").get("items", []):
            provisioned_by = (
                volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
            )
            if (
                provisioned_by == STORAGE_PROVISIONER
                and volume.get("status", {}).get("phase") == "Released"
            ):
                self.api.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
                path = Path(volume["spec"].get("hostPath", {}).get("path", "/"))
                if path.parent == self.volumes_dir:  # only what this agent provisioned
                    shutil.rmtree(path, ignore_errors=True)

    def sync_services(self) -> None:
        if self.network is not None:
            self.network.sync(
                self.api.get("/api/v1/services").get("items", []),
                self.api.get("/api/v1/endpoints").get("items", []),
            )
        if self.runtime is not None:
            self.runtime.refresh()

    def tick(self, now: float) -> None:
        if now - self.last_heartbeat >= self.timing.heartbeat_seconds:
            self.heartbeat(now)
        self.sync_services()
        self.sync_pods(now)
        self.sync_volumes()


def assign_pod_ips(pods: list[JSON], nodes: dict[str, NodeSpec]) -> None:
    """Gives each bound pod without a podIP in its status a derived one no other pod holds
    (written into the pod dict; simulate_pod then reports it, and the status keeps it)."""
    taken = {p.get("status", {}).get("podIP") for p in pods} - {None}
    for pod in pods:
        node = nodes.get(pod["spec"].get("nodeName", ""))
        if node is None or pod.get("status", {}).get("podIP"):
            continue
        attempt = 0
        while (ip := node.pod_ip(pod["metadata"]["uid"], attempt)) in taken:
            attempt += 1
        pod.setdefault("status", {})["podIP"] = ip
        taken.add(ip)


def node_labels(node: NodeSpec) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": node.gpu_type or "cpu",
    }
    if node.gpu_type:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": node.gpu_product or node.gpu_type,
            "nvidia.com/gpu.count": str(node.gpus),
            "nvidia.com/gpu.memory": str(int((node.gpu_memory_gib or 0) * 1024)),
            "gpu-type": node.gpu_type,
        }
    if node.gpu_compute_capability:
        major, minor = node.gpu_compute_capability.split(".")
        labels |= {"nvidia.com/gpu.compute.major": major, "nvidia.com/gpu.compute.minor": minor}
    return labels


def node_spec(node: NodeSpec) -> JSON:
    if not node.gpu_type:
        return {"taints": []}
    return {"taints": [{"key": node.gpu_type, "effect": "NoSchedule"}]}


def node_status(node: NodeSpec, now: float, since: float, kubelet_port: int | None = None) -> JSON:
    capacity = {
        "cpu": node.cpu,
        "memory": node.memory,
        "pods": str(node.pods),
        "ephemeral-storage": "500Gi",
    }
    if node.gpus:
        capacity[GPU_RESOURCE] = str(node.gpus)
    stamp = iso(now)
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": "simulated by the haw.icc sandbox node agent",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": iso(since),
            }
            for kind, value, reason in conditions
        ],
        "addresses": [
            {"type": "InternalIP", "address": node.address},
            {"type": "Hostname", "address": node.name},
        ],
        # Where the API server reads pod logs (icc_sandbox.kubelet): a port chosen free at start.
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port or 10250}},
        "nodeInfo": {
            "machineID": node.name,
            "systemUUID": node.name,
            "bootID": node.name,
            "kernelVersion": "simulated",
            "osImage": "haw.icc sandbox",
            "containerRuntimeVersion": "sandbox://1",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def persistent_volume(claim: JSON, volumes_dir: Path) -> JSON:
    """A volume for the claim: a directory of its own below `volumes_dir` (created by whoever
    mounts it first; removed when the volume is deleted)."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": STORAGE_PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec["storageClassName"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            # The real Open WebUI keeps its data here (process_runtime); other pods only
            # simulate their use of it.
            "hostPath": {"path": str(volumes_dir / f"pvc-{meta['uid']}")},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
