"""Deterministic, realistic ``v1.Node`` objects for the nodes of a :mod:`benchmarks.cluster` cluster.

What a kube-scheduler extender with ``nodeCacheCapable: false`` receives is the scheduler's cached
Node objects, sent whole (managedFields and annotations included, docs: extender-protocol.md). On a
real cluster such an object weighs tens of kilobytes, and most of that is not the spec: it is the
labels (the kubelet's, the cloud's, NFD's ``feature.node.kubernetes.io/*`` and GPU feature
discovery's), the annotations (NFD lists every label it owns), ``metadata.managedFields`` (one entry
per writer, repeating every key it owns) and ``status.images`` (the kubelet reports up to 50 images,
largest first, each with its ``repo@sha256:`` digest and tag). Those are generated here from the
node's NodeFeature object, so labels, kernel and OS agree with the feature table.

Everything is drawn from ``random.Random`` seeded by the caller's seed and the node's name, so the
same ``(NodeFeature, seed)`` gives an identical object in every process; digests are the sha256 of
the image reference, so an image has the same digest on every node that has it.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
from typing import Any

from extender.features.nodefeature import RawNodeFeature

__all__ = ["IMAGE_CATALOGUE", "generate_node_object", "generate_node_objects"]

Node = dict[str, Any]

#: (repository, tags, compressed-size range in MiB): the images a node of a busy cluster has pulled.
#: ``infra`` ones run on every node (DaemonSets); the rest come and go with workloads.
_INFRA: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("registry.k8s.io/kube-proxy", ("v1.36.2", "v1.36.1"), (28, 32)),
    ("registry.k8s.io/pause", ("3.10",), (1, 1)),
    ("docker.io/calico/node", ("v3.29.1", "v3.28.2"), (140, 160)),
    ("docker.io/calico/cni", ("v3.29.1", "v3.28.2"), (90, 100)),
    ("docker.io/calico/pod2daemon-flexvol", ("v3.29.1",), (6, 8)),
    ("registry.k8s.io/nfd/node-feature-discovery", ("v0.17.1", "v0.16.6"), (60, 70)),
    ("quay.io/prometheus/node-exporter", ("v1.8.2", "v1.9.0"), (10, 12)),
    ("docker.io/fluent/fluent-bit", ("3.2.4", "3.1.9"), (30, 40)),
    ("registry.k8s.io/sig-storage/csi-node-driver-registrar", ("v2.12.0",), (10, 12)),
    ("registry.k8s.io/sig-storage/livenessprobe", ("v2.14.0",), (8, 10)),
    ("docker.io/rancher/local-path-provisioner", ("v0.0.30",), (18, 22)),
)
_GPU: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("nvcr.io/nvidia/k8s-device-plugin", ("v0.17.0", "v0.16.2"), (120, 140)),
    ("nvcr.io/nvidia/gpu-feature-discovery", ("v0.17.0",), (110, 130)),
    ("nvcr.io/nvidia/cloud-native/dcgm", ("3.3.9-1-ubuntu22.04",), (600, 700)),
    ("nvcr.io/nvidia/k8s/dcgm-exporter", ("3.3.9-3.6.1-ubuntu22.04",), (500, 560)),
    ("nvcr.io/nvidia/driver", ("550.127.08-ubuntu22.04", "535.216.03-rhel9.4"), (1200, 1500)),
    ("nvcr.io/nvidia/cuda", ("12.4.1-base-ubuntu22.04", "12.6.3-runtime-ubuntu22.04"), (90, 2400)),
    ("nvcr.io/nvidia/pytorch", ("24.10-py3", "24.12-py3"), (9000, 10500)),
    ("nvcr.io/nvidia/tritonserver", ("24.10-py3", "24.12-py3"), (6500, 8000)),
    ("nvcr.io/nvidia/tensorrt", ("24.10-py3",), (4000, 5000)),
    ("ghcr.io/example-ai/llm-serving", ("v2.3.0", "v2.4.1", "v2.5.0-rc1"), (7000, 9000)),
)
_NET: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin", ("v3.8.0", "v3.7.0"), (30, 40)),
    ("ghcr.io/k8snetworkplumbingwg/sriov-cni", ("v2.8.1",), (10, 14)),
    ("ghcr.io/k8snetworkplumbingwg/multus-cni", ("v4.1.3-thick",), (80, 95)),
    ("registry.example.com/telco/dpdk-app", ("23.11", "24.03", "24.07"), (350, 500)),
    ("registry.example.com/telco/upf", ("1.14.2", "1.15.0"), (250, 320)),
    ("registry.example.com/telco/vrouter", ("5.2.1",), (400, 450)),
)
_TEAM_APPS: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = tuple(
    (f"registry.example.com/{team}/{app}", ("1.42.0", "1.42.1", "1.43.0"), (60, 900))
    for team, apps in (
        ("payments", ("api", "ledger", "fraud-scorer", "settlement-worker")),
        ("search", ("indexer", "query-frontend", "ranker")),
        ("platform", ("ingress-gateway", "auth-proxy", "config-server", "audit-sink")),
        ("data", ("spark-executor", "kafka-connect", "flink-taskmanager", "trino-worker")),
        ("web", ("storefront", "checkout", "recommendations", "image-resizer")),
    )
    for app in apps
)
_APPS: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    *_TEAM_APPS,
    ("docker.io/library/postgres", ("16.6", "17.2"), (150, 160)),
    ("docker.io/library/redis", ("7.4.1", "7.2.6"), (40, 45)),
    ("docker.io/library/nginx", ("1.27.3", "1.26.2"), (70, 75)),
    ("docker.io/library/python", ("3.12-slim", "3.13-slim"), (45, 50)),
    ("docker.io/bitnami/kafka", ("3.9.0",), (170, 190)),
    ("quay.io/jetstack/cert-manager-controller", ("v1.16.2",), (20, 25)),
    ("quay.io/argoproj/argocd", ("v2.13.2",), (170, 180)),
    ("docker.io/grafana/loki", ("3.3.2",), (30, 40)),
    ("quay.io/prometheus/prometheus", ("v3.1.0",), (110, 120)),
    ("docker.io/busybox", ("1.37", "1.36.1"), (2, 2)),
)
#: Every repository the generator can put in ``status.images``, in a fixed order.
IMAGE_CATALOGUE: tuple[str, ...] = tuple(r for r, _, _ in (*_INFRA, *_GPU, *_NET, *_APPS))

_MAX_IMAGES = 50  # the kubelet's default nodeStatusMaxImages
_FIXED_TIME = "2026-11-20T08:14:{:02d}Z"

_POOL_SHAPE: dict[str, tuple[str, str, str, str]] = {
    # pool -> (instance type, cpu capacity, memory capacity, ephemeral storage)
    "gpu-h100": ("bm.gpu.h100.8", "224", "2113560616Ki", "3749636448Ki"),
    "gpu-a100-rhel": ("bm.gpu.a100.8", "256", "2113545716Ki", "3749636448Ki"),
    "dpdk-e810": ("bm.net.e810.2", "112", "527846232Ki", "936748112Ki"),
    "general-genoa": ("bm.std.genoa.1", "192", "792512480Ki", "1874818224Ki"),
    "legacy-broadwell": ("bm.std.bdw.1", "88", "264026128Ki", "468371824Ki"),
    "arm-ampere": ("bm.arm.a1.1", "160", "527848368Ki", "936748112Ki"),
    "vm-kvm": ("vm.std.8", "8", "32880128Ki", "104805172Ki"),
}


def _digest(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def _pool(name: str) -> str:
    return name.rsplit("-", 1)[0]


def _images(rng: random.Random, pool: str) -> list[dict[str, Any]]:
    """``status.images``: every infra image, the pool's own, a random share of the workload ones;
    largest first and at most 50, as the kubelet reports them."""
    chosen: list[tuple[str, str, int]] = []

    def add(repo: str, tags: tuple[str, ...], size: tuple[int, int], n_tags: int = 1) -> None:
        for tag in rng.sample(tags, min(n_tags, len(tags))):
            mib = rng.randint(*size)
            chosen.append((repo, tag, mib * 1_048_576 + rng.randrange(1_048_576)))

    for repo, tags, size in _INFRA:
        add(repo, tags, size, n_tags=rng.choice((1, 1, 2)))
    if pool.startswith("gpu"):
        for repo, tags, size in _GPU:
            add(repo, tags, size, n_tags=rng.choice((1, 2)))
    if pool == "dpdk-e810":
        for repo, tags, size in _NET:
            add(repo, tags, size, n_tags=rng.choice((1, 2)))
    for repo, tags, size in rng.sample(_APPS, rng.randint(12, len(_APPS))):
        add(repo, tags, size, n_tags=rng.choice((1, 1, 2, 3)))
    chosen.sort(key=lambda c: -c[2])
    out: list[dict[str, Any]] = []
    for repo, tag, size_bytes in chosen[:_MAX_IMAGES]:
        ref = f"{repo}:{tag}"
        names = [f"{repo}@{_digest(ref)}", ref]
        out.append({"names": names, "sizeBytes": size_bytes})
    return out


def _gpu_labels(rng: random.Random, pool: str, gpus: int) -> dict[str, str]:
    """What NVIDIA's GPU feature discovery adds next to NFD's labels."""
    h100 = pool == "gpu-h100"
    driver = ("550", "127", "08") if h100 else ("535", "216", "03")
    return {
        "nvidia.com/cuda.driver-version.full": ".".join(driver),
        "nvidia.com/cuda.driver-version.major": driver[0],
        "nvidia.com/cuda.driver-version.minor": driver[1],
        "nvidia.com/cuda.driver-version.revision": driver[2],
        "nvidia.com/cuda.runtime-version.full": "12.4" if h100 else "12.2",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "4" if h100 else "2",
        "nvidia.com/gfd.timestamp": str(1795000000 + rng.randrange(10**6)),
        "nvidia.com/gpu.compute.major": "9" if h100 else "8",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.family": "hopper" if h100 else "ampere",
        "nvidia.com/gpu.machine": "PowerEdge-XE9680" if h100 else "ProLiant-XL675d-Gen10-Plus",
        "nvidia.com/gpu.memory": "81559" if h100 else "81920",
        "nvidia.com/gpu.mode": "compute",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" if h100 else "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/vgpu.present": "false",
    }


def _fields(keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {".": {}}
    out.update((f"f:{k}", {}) for k in keys)
    return out


def _managed_fields(
    kubelet_labels: Sequence[str],
    nfd_labels: Sequence[str],
    gfd_labels: Sequence[str],
    resources: Sequence[str],
) -> list[dict[str, Any]]:
    """One entry per writer, each repeating the keys it owns: this is why cached nodes are big."""
    conditions: dict[str, Any] = {
        f'k:{{"type":"{t}"}}': {
            ".": {},
            "f:lastHeartbeatTime": {},
            "f:lastTransitionTime": {},
            "f:message": {},
            "f:reason": {},
            "f:status": {},
            "f:type": {},
        }
        for t in ("DiskPressure", "MemoryPressure", "PIDPressure", "Ready")
    }
    entries: list[dict[str, Any]] = [
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _FIXED_TIME.format(1),
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": _fields(
                        [
                            "node.alpha.kubernetes.io/ttl",
                            "volumes.kubernetes.io/controller-managed-attach-detach",
                        ]
                    ),
                    "f:labels": _fields(kubelet_labels),
                },
                "f:spec": {"f:providerID": {}},
            },
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _FIXED_TIME.format(2),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:podCIDR": {}, "f:podCIDRs": {".": {}, 'v:"10.244.0.0/24"': {}}}},
        },
        {
            "manager": "calico-node",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _FIXED_TIME.format(3),
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {
                        "f:projectcalico.org/IPv4Address": {},
                        "f:projectcalico.org/IPv4VXLANTunnelAddr": {},
                    }
                },
                "f:status": {
                    "f:conditions": {'k:{"type":"NetworkUnavailable"}': conditions['k:{"type":"Ready"}']}
                },
            },
            "subresource": "status",
        },
        {
            "manager": "nfd-master",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _FIXED_TIME.format(4),
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {
                        "f:nfd.node.kubernetes.io/feature-labels": {},
                        "f:nfd.node.kubernetes.io/extended-resources": {},
                    },
                    "f:labels": {f"f:{k}": {} for k in nfd_labels},
                }
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": _FIXED_TIME.format(5),
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:allocatable": _fields(resources),
                    "f:capacity": _fields(resources),
                    "f:conditions": conditions,
                    "f:daemonEndpoints": {"f:kubeletEndpoint": {"f:Port": {}}},
                    "f:features": {".": {}, "f:supplementalGroupsPolicy": {}},
                    "f:images": {},
                    "f:nodeInfo": _fields(
                        [
                            "architecture",
                            "bootID",
                            "containerRuntimeVersion",
                            "kernelVersion",
                            "kubeProxyVersion",
                            "kubeletVersion",
                            "machineID",
                            "operatingSystem",
                            "osImage",
                            "systemUUID",
                        ]
                    ),
                    "f:runtimeHandlers": {},
                }
            },
            "subresource": "status",
        },
    ]
    if gfd_labels:
        entries.append(
            {
                "manager": "gpu-feature-discovery",
                "operation": "Update",
                "apiVersion": "v1",
                "time": _FIXED_TIME.format(6),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in gfd_labels}}},
            }
        )
    return entries


def _condition(kind: str, status: str, reason: str, message: str, heartbeat: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": "2026-11-20T08:15:02Z",
        "reason": reason,
        "message": message,
    }


def generate_node_object(nodefeature: RawNodeFeature, seed: int = 0) -> Node:
    """The ``v1.Node`` of the node ``nodefeature`` describes, as the scheduler's cache holds it."""
    name: str = nodefeature["metadata"]["name"]
    rng = random.Random(f"node:{seed}:{name}")
    pool = _pool(name)
    features = nodefeature["spec"]["features"]
    attrs = {k: v["elements"] for k, v in features["attributes"].items()}
    pci = [i["attributes"] for i in features["instances"]["pci.device"]["elements"]]
    arm = attrs["cpu.model"]["vendor_id"] == "ARM"
    arch = "arm64" if arm else "amd64"
    kernel = attrs["kernel.version"]["full"]
    os_id = attrs["system.osrelease"]["ID"]
    os_version = attrs["system.osrelease"]["VERSION_ID"]
    os_image = (
        f"Ubuntu {os_version}.{rng.randint(3, 5)} LTS"
        if os_id == "ubuntu"
        else f"Red Hat Enterprise Linux {os_version} (Plow)"
    )
    gpus = sum(1 for d in pci if d["vendor"] == "10de" and d["class"] in ("0300", "0302"))
    shape = _POOL_SHAPE.get(pool, ("bm.std.generic", "64", "263921396Ki", "468371824Ki"))
    instance_type, cpu, memory, storage = shape
    zone = f"zone-{'abc'[rng.randrange(3)]}"
    ip = f"10.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    kubelet_labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": instance_type,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "eu-central",
        "failure-domain.beta.kubernetes.io/zone": f"eu-central-{zone}",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": "eu-central",
        "topology.kubernetes.io/zone": f"eu-central-{zone}",
    }
    nfd_labels: dict[str, str] = dict(nodefeature["spec"].get("labels", {}))
    gfd_labels = _gpu_labels(rng, pool, gpus) if gpus else {}
    labels = {
        **kubelet_labels,
        "node-role.kubernetes.io/worker": "",
        "cluster.example.com/pool": pool,
        "cluster.example.com/rack": f"r{rng.randrange(40):02d}",
        **nfd_labels,
        **gfd_labels,
    }
    prefix = "feature.node.kubernetes.io/"
    annotations = {
        "csi.volume.kubernetes.io/nodeid": f'{{"rancher.io/local-path":"{name}"}}',
        "node.alpha.kubernetes.io/ttl": "0",
        "nfd.node.kubernetes.io/feature-labels": ",".join(
            k.removeprefix(prefix) for k in nfd_labels if k.startswith(prefix)
        ),
        "nfd.node.kubernetes.io/extended-resources": "",
        "projectcalico.org/IPv4Address": f"{ip}/20",
        "projectcalico.org/IPv4VXLANTunnelAddr": f"10.244.{rng.randrange(256)}.0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    hugepages = "0" if pool in ("vm-kvm", "legacy-broadwell") else f"{rng.choice((16, 32, 64))}Gi"
    capacity = {
        "cpu": cpu,
        "ephemeral-storage": storage,
        "hugepages-1Gi": hugepages,
        "hugepages-2Mi": "0",
        "memory": memory,
        "pods": "110",
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    if pool == "dpdk-e810":
        capacity["intel.com/sriov_netdevice"] = "16"
    allocatable = dict(capacity)
    allocatable["cpu"] = f"{int(cpu) * 1000 - 500}m"
    allocatable["ephemeral-storage"] = str(int(storage.removesuffix("Ki")) * 1024 * 9 // 10)
    allocatable["memory"] = f"{int(memory.removesuffix('Ki')) - 1_048_576}Ki"
    heartbeat = f"2026-11-23T00:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
    taints = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}] if gpus else []
    spec: dict[str, Any] = {
        "podCIDR": "10.244.0.0/24",
        "podCIDRs": ["10.244.0.0/24"],
        "providerID": f"baremetal://eu-central/{name}",
    }
    if taints:
        spec["taints"] = taints
    uid = uuid.UUID(int=rng.getrandbits(128), version=4)
    return {
        "metadata": {
            "name": name,
            "uid": str(uid),
            "resourceVersion": str(rng.randrange(10**6, 10**8)),
            "creationTimestamp": _FIXED_TIME.format(0),
            "labels": labels,
            "annotations": annotations,
            "managedFields": _managed_fields(
                list(kubelet_labels), list(nfd_labels), list(gfd_labels), list(capacity)
            ),
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                _condition(
                    "NetworkUnavailable", "False", "CalicoIsUp", "Calico is running on this node", heartbeat
                ),
                _condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    heartbeat,
                ),
                _condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    heartbeat,
                ),
                _condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    heartbeat,
                ),
                _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", heartbeat),
            ],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{rng.getrandbits(128):032x}",
                "systemUUID": str(uuid.UUID(int=rng.getrandbits(128))).upper(),
                "bootID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "kernelVersion": kernel,
                "osImage": os_image,
                "containerRuntimeVersion": "containerd://2.0.2",
                "kubeletVersion": "v1.36.2",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
            "images": _images(rng, pool),
            "features": {"supplementalGroupsPolicy": True},
            "runtimeHandlers": [
                {"name": "runc", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
                {"name": "", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
                *([{"name": "nvidia", "features": {"recursiveReadOnlyMounts": True}}] if gpus else []),
            ],
        },
    }


def generate_node_objects(nodefeatures: Sequence[RawNodeFeature], seed: int = 0) -> list[Node]:
    """One ``v1.Node`` per NodeFeature object, in the same order."""
    return [generate_node_object(nf, seed) for nf in nodefeatures]
