"""The scheduling decision: images, tags, alternatives vs intersection, reasons and scores."""

from __future__ import annotations

from typing import Any

import pytest

from extender.decide import ImageSpec, MissingFeatures, decide
from extender.errors import PodError
from extender.match.table import FeatureTable
from extender.pods import FAILURE_POLICY_ANNOTATION, TAGS_ANNOTATION, pod_failure_policy, pod_images, pod_tags
from extender.spec.model import CompatibilitySet
from tests.helpers import R, S, T, X, node

GPU = node(
    "gpu",
    flags={"kernel.loadedmodule": ["vfio-pci", "nvidia"]},
    instances={"pci.device": [{"vendor": "10de"}]},
)
NIC = node(
    "nic",
    flags={"kernel.loadedmodule": ["vfio-pci", "mlx5_core"]},
    instances={"pci.device": [{"vendor": "15b3"}]},
)
PLAIN = node("plain", flags={"kernel.loadedmodule": ["ext4"]})
TABLE = FeatureTable.from_features([GPU, NIC, PLAIN])

CUDA = S(
    CompatibilitySet(
        rules=(R(T("pci.device", {"vendor": X("In", "10de")}), name="nvidia"),), weight=8, tag="gpu"
    ),
    CompatibilitySet(
        rules=(R(T("kernel.loadedmodule", {"vfio-pci": X("Exists")}), name="vfio"),), weight=2, tag="vm"
    ),
)
RDMA = S(
    CompatibilitySet(rules=(R(T("kernel.loadedmodule", {"mlx5_core": X("Exists")}), name="mlx"),), weight=5)
)


def pod(
    *images: str, init: tuple[str, ...] = (), annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": annotations or {}},
        "spec": {
            "initContainers": [{"image": i} for i in init],
            "containers": [{"image": i} for i in images],
        },
    }


def test_images_of_containers_and_init_containers_once() -> None:
    assert pod_images(pod("a", "b", "a", init=("c", "a"))) == ["c", "a", "b"]
    assert pod_images({"metadata": {}}) == []


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"spec": []},
        {"spec": {"containers": "x"}},
        {"spec": {"containers": [1]}},
        {"spec": {"containers": [{"image": 3}]}},
    ],
)
def test_malformed_pods_raise_pod_error(bad: Any) -> None:
    with pytest.raises(PodError):
        pod_images(bad)


def test_tags_and_failure_policy_from_annotations() -> None:
    assert pod_tags(pod()) is None
    assert pod_tags(pod(annotations={TAGS_ANNOTATION: " gpu, vm ,"})) == frozenset({"gpu", "vm"})
    assert pod_tags(pod(annotations={TAGS_ANNOTATION: " , "})) is None
    assert pod_failure_policy(pod(), "Fail") == "Fail"
    assert pod_failure_policy(pod(annotations={FAILURE_POLICY_ANNOTATION: "ignore"}), "Fail") == "Ignore"
    assert pod_failure_policy(pod(annotations={FAILURE_POLICY_ANNOTATION: "bogus"}), "Ignore") == "Ignore"


def test_no_spec_imposes_nothing() -> None:
    d = decide([], TABLE, ["gpu", "ghost"])
    assert d.passed == ["gpu", "ghost"] and d.failed == {} and d.scores == {"gpu": 0, "ghost": 0}


def test_sets_are_alternatives_and_scores_take_the_best_weight() -> None:
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["gpu", "nic", "plain"])
    assert d.passed == ["gpu", "nic"]
    assert d.scores == {"gpu": 10, "nic": 3, "plain": 0}  # 8 -> 10, 2 -> 2.5 rounded up
    assert d.failed["plain"] == (
        "image cuda:12: set #0 (tag gpu): rule 'nvidia': pci.device: feature not found on the node; "
        "1 other set(s) failed too"
    )


def test_images_intersect_and_weights_add_up() -> None:
    d = decide([ImageSpec("cuda:12", CUDA), ImageSpec("rdma:1", RDMA)], TABLE, ["gpu", "nic", "plain"])
    assert d.passed == ["nic"]
    assert d.failed["gpu"].startswith("image rdma:1: set #0: rule 'mlx': kernel.loadedmodule.mlx5_core")
    assert d.failed["plain"].startswith("image cuda:12:")  # the first incompatible image is named
    assert d.scores == {"gpu": 0, "nic": 10, "plain": 0}


def test_tags_select_sets() -> None:
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["gpu", "nic"], tags=frozenset({"gpu"}))
    assert d.passed == ["gpu"] and "nic" in d.failed


def test_missing_nodefeature_policy() -> None:
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["gpu", "ghost"])
    assert d.failed == {"ghost": "node has no NodeFeature: its features are unknown"}
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["gpu", "ghost"], missing_features="pass")
    assert d.passed == ["gpu", "ghost"] and d.scores == {"gpu": 10, "ghost": 0}


def test_evaluation_error_fails_the_set_and_says_so() -> None:
    spec = S([R(T("kernel.version", {"full": X("Gt", "5.4", type="version")}), name="kernel")])
    table = FeatureTable.from_features([node("rhel", attrs={"kernel.version": {"full": "5.14.0-427.el9_4"}})])
    d = decide([ImageSpec("img", spec)], table, ["rhel"])
    assert d.failed == {
        "rhel": "image img: set #0: evaluation error in rule 'kernel': not a version '5.14.0-427.el9_4'"
    }


def test_detail_limit_bounds_explanations() -> None:
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["plain"], detail_limit=0)
    assert d.failed == {"plain": "image cuda:12: no compatibility set matched (see /debug/explain)"}


def test_zero_and_negative_weights_score_zero() -> None:
    spec = S(CompatibilitySet(rules=(), weight=-5))
    d = decide([ImageSpec("x", spec)], TABLE, ["gpu", "nic"])
    assert d.passed == ["gpu", "nic"] and d.scores == {"gpu": 0, "nic": 0}


def test_memoised_reasons_follow_node_updates() -> None:
    spec = S([R(T("kernel.loadedmodule", {"vfio_pci": X("Exists")}), name="vfio")])
    table = FeatureTable.from_features([node("n", flags={"kernel.loadedmodule": ["kvm"]})])
    first = decide([ImageSpec("img", spec)], table, ["n"]).failed["n"]
    assert "flag absent" in first
    assert decide([ImageSpec("img", spec)], table, ["n"]).failed["n"] == first  # memoised
    table.set_node(node("n", flags={"kernel.loadedmodule": ["kvm", "vfio_pci"]}))
    assert decide([ImageSpec("img", spec)], table, ["n"]).passed == ["n"]
    other = S([R(T("kernel.loadedmodule", {"nvidia": X("Exists")}), name="nv")])
    assert "rule 'nv'" in decide([ImageSpec("img", other)], table, ["n"]).failed["n"]
    table.set_node(node("n", attrs={"kernel.version": {"full": "6.8.0"}}))  # modules gone entirely
    assert (
        decide([ImageSpec("img", spec)], table, ["n"])
        .failed["n"]
        .endswith("kernel.loadedmodule: feature not found on the node")
    )


def test_duplicate_names_and_zero_detail_limit() -> None:
    d = decide([ImageSpec("cuda:12", CUDA)], TABLE, ["plain", "plain", "gpu"], detail_limit=0)
    assert d.passed == ["gpu"] and list(d.failed) == ["plain"]
    assert d.scores == {"plain": 0, "gpu": 10}


def test_unknown_node_fails_even_when_a_set_matches_anything() -> None:
    # A catch-all set (no rules: "runs anywhere, prefers the GPU set") matches a node with no features
    # at all, but a node without NodeFeature is not a node without features: they are unknown, and
    # missing_features=fail rejects it like any other unknown node.
    spec = S(CUDA.compatibilities[0], CompatibilitySet(rules=(), weight=0))
    image = ImageSpec("app:1", spec)
    d = decide([image], TABLE, ["gpu", "ghost", "plain"])
    assert d.passed == ["gpu", "plain"]
    assert d.failed == {"ghost": "node has no NodeFeature: its features are unknown"}
    d = decide([image, ImageSpec("cuda:12", CUDA)], TABLE, ["ghost", "plain", "gpu"])
    assert d.passed == ["gpu"] and d.failed["ghost"].startswith("node has no NodeFeature")
    d = decide([image], TABLE, ["gpu", "ghost"], missing_features="pass")
    assert d.passed == ["gpu", "ghost"] and d.failed == {}


@pytest.mark.parametrize(
    ("images", "names"),
    [
        ([ImageSpec("cuda:12", CUDA)], ["plain", "gpu", "plain", "nic"]),  # one image, every node known
        ([ImageSpec("cuda:12", CUDA)], ["ghost", "plain", "gpu"]),  # an unknown node
        ([ImageSpec("cuda:12", CUDA), ImageSpec("rdma:1", RDMA)], ["plain", "gpu", "nic"]),  # two images
        ([ImageSpec("cuda:12", CUDA)], []),  # no candidates
    ],
)
@pytest.mark.parametrize("missing", ["fail", "pass"])
def test_verb_forms_agree_with_the_full_decision(
    images: list[ImageSpec], names: list[str], missing: MissingFeatures
) -> None:
    # the filter form (no scores) and the prioritize form (no verdicts) take shortcuts of their own
    # (no score gather, no verdict lists); what they do build is the full decision's, whatever the path
    full = decide(images, TABLE, names, missing_features=missing)
    sent = list(names)
    filt = decide(images, TABLE, names, missing_features=missing, scores=False)
    assert (filt.passed, list(filt.failed.items()), filt.score_list) == (
        full.passed,
        list(full.failed.items()),
        [],
    )
    prio = decide(images, TABLE, names, missing_features=missing, verdicts=False)
    assert (prio.passed, prio.failed, prio.score_list) == ([], {}, full.score_list)
    as_tuple = decide(images, TABLE, tuple(names), missing_features=missing)  # any sequence will do
    assert (as_tuple.names, as_tuple.passed, as_tuple.failed) == (names, full.passed, full.failed)
    assert names == sent  # the candidates are read, never changed


def test_only_the_first_failing_nodes_get_details_once_each() -> None:
    d = decide(
        [ImageSpec("cuda:12", CUDA)],
        TABLE,
        ["plain", "plain", "gpu", "nic"],
        tags=frozenset({"gpu"}),
        detail_limit=1,
    )
    assert d.passed == ["gpu"]
    assert list(d.failed) == ["plain", "nic"]
    assert d.failed["plain"].startswith("image cuda:12: set #0 (tag gpu): rule 'nvidia'")
    assert d.failed["nic"] == "image cuda:12: no compatibility set matched (see /debug/explain)"
