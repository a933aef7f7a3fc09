"""Wake-ups (extender/sources/wakeup.py): a NodeFeature change that makes a node fit a waiting pod
writes one annotation on that Node; anything else writes nothing; bursts are coalesced and capped;
refused writes are counted and logged, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import pytest

from extender.errors import KubeError
from extender.features.nodefeature import NodeFeatures
from extender.sources.base import StaticSpecs
from extender.sources.wakeup import ANNOTATION, PendingPod, WakeUps, annotation_patch
from extender.spec.model import CompatibilitySet
from tests.helpers import R, S, T, X, node

VFIO = S([R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}))])
GPU = S(
    CompatibilitySet(rules=(R(T("kernel.loadedmodule", {"nvidia": X("Exists")})),), tag="gpu"),
    CompatibilitySet(rules=(R(T("kernel.loadedmodule", {"amdgpu": X("Exists")})),), tag="amd"),
)
SPECS = StaticSpecs({"reg/dpdk:1": VFIO, "reg/gpu:1": GPU}, failing={"reg/broken:1": "registry down"})


def modules(name: str, *names: str) -> NodeFeatures:
    return node(name, flags={"kernel.loadedmodule": list(names)})


class Patcher:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Mapping[str, Any]]] = []
        self.answer: dict[str, int] = {}  # node -> error status to answer

    async def patch(self, path: str, patch: Mapping[str, Any]) -> None:
        name = path.rsplit("/", 1)[-1]
        if name in self.answer:
            raise KubeError(f"PATCH {path}: {self.answer[name]}", self.answer[name])
        self.writes.append((path, patch))

    @property
    def nodes(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path, _ in self.writes]


class Pods:
    def __init__(self, *pods: PendingPod) -> None:
        self.pods = list(pods)

    def pending_pods(self) -> Collection[PendingPod]:
        return self.pods


def wakeups(*pods: PendingPod, **kwargs: Any) -> tuple[WakeUps, Patcher]:
    patcher = Patcher()
    return WakeUps(patcher, Pods(*pods), SPECS, clock=lambda: 0.0, **kwargs), patcher


DPDK_POD = PendingPod("default/dpdk", ("reg/sidecar:1", "reg/dpdk:1"))


async def test_a_flip_writes_one_annotation_on_that_node() -> None:
    w, patcher = wakeups(DPDK_POD)
    w.features_changed("n1", modules("n1", "kvm"), modules("n1", "kvm", "vfio-pci"))
    assert await w.flush() == 1
    assert patcher.writes == [
        ("/api/v1/nodes/n1", {"metadata": {"annotations": {ANNOTATION: "1970-01-01T00:00:00Z"}}})
    ]
    assert patcher.writes[0][1] == annotation_patch("1970-01-01T00:00:00Z")
    assert w.counts.sent == 1 and w.waiting == 0
    assert await w.flush() == 0  # nothing changed since


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["vfio-pci"], ["vfio-pci", "kvm"]),  # fitted before and after
        (["kvm"], ["kvm", "nvidia"]),  # fits neither before nor after
        (["vfio-pci"], ["kvm"]),  # stops fitting: nothing to wake
    ],
)
async def test_changes_that_flip_nothing_write_nothing(old: list[str], new: list[str]) -> None:
    w, patcher = wakeups(DPDK_POD)
    w.features_changed("n1", modules("n1", *old), modules("n1", *new))
    assert await w.flush() == 0 and patcher.writes == []
    assert w.counts.no_flip == 1


async def test_no_waiting_pod_no_write() -> None:
    w, patcher = wakeups(PendingPod("default/plain", ("reg/unknown:1",)))  # no spec: not waiting for us
    w.features_changed("n1", modules("n1"), modules("n1", "vfio-pci"))
    assert await w.flush() == 0 and patcher.writes == [] and w.counts.no_pending == 1


async def test_changes_within_an_interval_are_compared_first_to_last() -> None:
    w, patcher = wakeups(DPDK_POD)
    w.features_changed("n1", modules("n1"), modules("n1", "vfio-pci"))
    w.features_changed("n1", modules("n1", "vfio-pci"), modules("n1", "vfio-pci", "kvm"))
    w.features_changed("n1", modules("n1", "vfio-pci", "kvm"), modules("n1", "vfio-pci"))
    assert await w.flush() == 1 and patcher.nodes == ["n1"]
    # a flip that was undone within the interval wakes nobody
    w.features_changed("n2", modules("n2"), modules("n2", "vfio-pci"))
    w.features_changed("n2", modules("n2", "vfio-pci"), modules("n2"))
    assert await w.flush() == 0 and patcher.nodes == ["n1"]


async def test_a_node_gaining_its_first_nodefeature_flips_unless_missing_features_pass() -> None:
    w, patcher = wakeups(DPDK_POD)
    w.features_changed("n1", None, modules("n1", "vfio-pci"))
    assert await w.flush() == 1
    w, patcher = wakeups(DPDK_POD, missing_features="pass")  # it passed already without features
    w.features_changed("n1", None, modules("n1", "vfio-pci"))
    assert await w.flush() == 0 and w.counts.no_flip == 1 and patcher.writes == []


async def test_tags_and_every_image_count() -> None:
    amd_only = PendingPod("default/gpu", ("reg/gpu:1",), frozenset({"amd"}))
    w, patcher = wakeups(amd_only)
    w.features_changed("n1", modules("n1"), modules("n1", "nvidia"))  # the gpu set is not selected
    w.features_changed("n2", modules("n2"), modules("n2", "amdgpu"))
    assert await w.flush() == 1 and patcher.nodes == ["n2"]
    both = PendingPod("default/both", ("reg/gpu:1", "reg/dpdk:1"))
    w, patcher = wakeups(both)
    w.features_changed("n1", modules("n1"), modules("n1", "nvidia"))  # the dpdk image still does not fit
    w.features_changed("n2", modules("n2", "nvidia"), modules("n2", "nvidia", "vfio-pci"))
    assert await w.flush() == 1 and patcher.nodes == ["n2"]


async def test_a_pod_whose_lookup_fails_is_left_out() -> None:
    w, patcher = wakeups(PendingPod("default/x", ("reg/dpdk:1", "reg/broken:1")))
    w.features_changed("n1", modules("n1"), modules("n1", "vfio-pci"))
    assert await w.flush() == 0 and w.counts.no_pending == 1 and patcher.writes == []


async def test_a_burst_is_capped_per_interval_and_every_node_written_once() -> None:
    w, patcher = wakeups(DPDK_POD, max_writes=10)
    names = [f"n{i:03}" for i in range(45)]
    for name in names:
        w.features_changed(name, modules(name), modules(name, "vfio-pci"))
    per_flush = [await w.flush() for _ in range(6)]
    assert per_flush == [10, 10, 10, 10, 5, 0]
    assert sorted(patcher.nodes) == names  # each exactly once
    assert w.counts.deferred == 35 + 25 + 15 + 5


async def test_a_deferred_node_that_changes_back_is_not_written() -> None:
    w, patcher = wakeups(DPDK_POD, max_writes=1)
    w.features_changed("a", modules("a"), modules("a", "vfio-pci"))
    w.features_changed("b", modules("b"), modules("b", "vfio-pci"))
    assert await w.flush() == 1 and patcher.nodes == ["a"]
    w.features_changed("b", modules("b", "vfio-pci"), modules("b"))  # deferred, then undone
    assert await w.flush() == 0 and patcher.nodes == ["a"]


async def test_refused_writes_are_counted_logged_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    w, patcher = wakeups(DPDK_POD)
    patcher.answer = {"n1": 403, "gone": 404}
    for name in ("n1", "gone", "n2"):
        w.features_changed(name, modules(name), modules(name, "vfio-pci"))
    with caplog.at_level(logging.WARNING, logger="extender.sources.wakeup"):
        assert await w.flush() == 1
    assert patcher.nodes == ["n2"] and w.counts.refused == 2 and w.waiting == 0
    assert any("refused" in r.getMessage() and "403" in r.getMessage() for r in caplog.records)
    patcher.answer = {}
    assert await w.flush() == 0  # not tried again


async def test_failed_writes_are_tried_again_next_interval() -> None:
    w, patcher = wakeups(DPDK_POD)
    patcher.answer = {"n1": 503}
    w.features_changed("n1", modules("n1"), modules("n1", "vfio-pci"))
    assert await w.flush() == 0 and w.counts.failed == 1 and w.waiting == 1
    patcher.answer = {}
    assert await w.flush() == 1 and patcher.nodes == ["n1"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        WakeUps(Patcher(), Pods(), SPECS, interval=0)
    with pytest.raises(ValueError, match="max_writes"):
        WakeUps(Patcher(), Pods(), SPECS, max_writes=0)
