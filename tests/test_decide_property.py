"""``decide`` (per-slot verdicts cached per spec/tags/generation, gathered per request) against an
obviously-correct decision built node by node from the reference evaluator, on random clusters,
specs, candidate lists (unknown and repeated names, any order), several images, tags, both
``missing_features`` modes, and table updates between calls; and multi-arch images on a table of
mixed platforms, where each node is judged by its platform's variant."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.decide import (
    MAX_SCORE,
    NO_FEATURES_REASON,
    ImageSpec,
    MissingFeatures,
    MissingPlatform,
    decide,
    missing_platform_reason,
)
from extender.features.nodefeature import NodeFeatures
from extender.match import evaluate as evaluate_module
from extender.match.reference import evaluate_node
from extender.match.result import Status
from extender.match.table import FeatureTable
from extender.spec.model import Spec
from extender.spec.variants import Variant
from tests.fuzz import examples
from tests.strategies import clusters, node_features, specs


def _naive(
    images: list[ImageSpec],
    table: FeatureTable,
    names: list[str],
    tags: frozenset[str] | None,
    missing: MissingFeatures,
    missing_platform: MissingPlatform = "fail",
) -> tuple[list[str], dict[str, str], list[int]]:
    """passed, failed (node -> the start of its reason: ``image I`` or ``image I (platform)`` for the
    image it first fails, the missing-platform reason, or NO_FEATURES_REASON), scores."""
    passed: list[str] = []
    failed: dict[str, str] = {}
    raw: list[int] = []
    for name in names:
        nf = table.node_features(name)
        features = nf if nf is not None else NodeFeatures(node=name)
        platform = table.platform_of(name) or table.default_platform
        total, first_bad = 0, None
        for item in images:
            variant = item.variant(platform)
            label = f"image {item.image} ({platform})" if item.multi_arch else f"image {item.image}"
            if variant is None:  # the index has no child for this node's platform
                if missing_platform == "fail" and first_bad is None:
                    first_bad = missing_platform_reason(item.image, platform)
                continue
            spec = variant.spec
            if spec is None:  # nothing to meet on this platform
                continue
            sets = spec.selected_sets(tags)
            verdicts = evaluate_node(spec, features, sets)
            matching = [
                spec.compatibilities[j].weight
                for j, v in zip(sets, verdicts, strict=True)
                if v.status == Status.MATCHED
            ]
            if not matching and first_bad is None:
                first_bad = label
            total += max([w for w in matching if w > 0], default=0)
        if nf is None:  # unknown node: its features are unknown, whatever the spec says
            ok = missing == "pass"
            why = NO_FEATURES_REASON
        else:
            ok = first_bad is None
            why = str(first_bad)
        if ok:
            passed.append(name)
        else:
            failed[name] = why
        raw.append(total if ok else 0)
    best = max(raw, default=0)
    scores = [0 if best <= 0 else (2 * MAX_SCORE * r + best) // (2 * best) for r in raw]
    return passed, failed, scores


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cluster=clusters(),
    spec_list=st.lists(specs(), min_size=1, max_size=3),
    data=st.data(),
)
def test_decide_agrees_with_node_by_node_reference(
    cluster: list[NodeFeatures], spec_list: list[Spec], data: st.DataObject
) -> None:
    # after the update between the rounds the cached results are either patched row by row or
    # walked afresh (extender/match/evaluate.py): both ways must agree with the reference
    how = data.draw(st.sampled_from(["reference rows", "table of the changed", "walk"]), label="update")
    saved = (evaluate_module.PATCH_ROWS, evaluate_module.PATCH_SHARE, evaluate_module.PATCH_FLOOR)
    evaluate_module.PATCH_ROWS, evaluate_module.PATCH_SHARE, evaluate_module.PATCH_FLOOR = {
        "reference rows": (10**9, 0, 0),
        "table of the changed": (0, 0, 0),
        "walk": (-1, 10**9, 0),
    }[how]
    try:
        _agrees(cluster, spec_list, data)
    finally:
        evaluate_module.PATCH_ROWS, evaluate_module.PATCH_SHARE, evaluate_module.PATCH_FLOOR = saved


def _agrees(cluster: list[NodeFeatures], spec_list: list[Spec], data: st.DataObject) -> None:
    table = FeatureTable.from_features(cluster)
    images = [ImageSpec(f"img{i}", s) for i, s in enumerate(spec_list)]
    pool = [nf.node for nf in cluster] + ["unknown-1", "unknown-2"]
    # the same tags in both rounds, so the second reads the first's cached result (patched or not)
    tags = data.draw(st.sampled_from([None, frozenset({"a"}), frozenset({"a", "b"})]), label="tags")
    victims: list[str] = []
    for _ in range(2):  # the second round runs after an update: the cached verdicts must follow it
        # the nodes just updated are asked about too: their verdicts are the ones that move
        names = data.draw(st.lists(st.sampled_from(pool), max_size=10), label="names") + victims
        missing: MissingFeatures = data.draw(st.sampled_from(["fail", "pass"]), label="missing")
        got = decide(images, table, names, tags=tags, missing_features=missing, detail_limit=0)
        passed, failed, scores = _naive(images, table, names, tags, missing)
        assert got.names == names
        assert got.passed == passed
        assert set(got.failed) == set(failed)
        for name, why in failed.items():
            if why == NO_FEATURES_REASON:
                assert got.failed[name] == NO_FEATURES_REASON
            else:
                assert got.failed[name].startswith(f"{why}: ")
        assert got.score_list == scores
        # filter's form: same verdicts, no scores; detailed reasons change only the wording
        detailed = decide(images, table, names, tags=tags, missing_features=missing, scores=False)
        assert detailed.passed == passed and set(detailed.failed) == set(failed) and detailed.score_list == []
        # prioritize's form: the same scores, no verdicts built
        only_scores = decide(images, table, names, tags=tags, missing_features=missing, verdicts=False)
        assert only_scores.score_list == scores and only_scores.passed == [] and only_scores.failed == {}
        # an update between the rounds: some nodes' features replaced, one node removed
        victims = data.draw(st.lists(st.sampled_from([nf.node for nf in cluster]), min_size=1, max_size=3))
        for victim in victims:
            table.set_node(data.draw(node_features(victim), label="new features"))
        gone = data.draw(st.sampled_from([nf.node for nf in cluster]), label="gone")
        table.remove_node(gone)


PLATFORMS = ("linux/amd64/v1", "linux/arm64/v8", "linux/s390x")


def _variant(data: st.DataObject, image: str, platform: str, spec_pool: list[Spec]) -> Variant | None:
    kind = data.draw(st.sampled_from(["platform", "index", "none", "missing"]), label=f"{image} {platform}")
    if kind == "missing":
        return None
    if kind == "none":
        return Variant(platform, None, "none")
    return Variant(platform, data.draw(st.sampled_from(spec_pool)), kind)  # type: ignore[arg-type]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cluster=clusters(),
    spec_list=st.lists(specs(), min_size=1, max_size=3),
    data=st.data(),
)
def test_decide_by_platform_agrees_with_node_by_node_reference(
    cluster: list[NodeFeatures], spec_list: list[Spec], data: st.DataObject
) -> None:
    """A table of amd64, arm64 and s390x nodes; images that are multi-arch (a variant per platform:
    the child's spec, the index's, none, or no child at all) or not: every node is judged by its own
    platform's variant, exactly as the reference judges it node by node."""
    table = FeatureTable()
    for nf in cluster:
        table.set_node(nf, data.draw(st.sampled_from(PLATFORMS), label=f"platform of {nf.node}"))
    images: list[ImageSpec] = []
    for i in range(data.draw(st.integers(1, 3), label="images")):
        image = f"img{i}"
        if data.draw(st.booleans(), label=f"{image} multi-arch"):
            variants = {p: _variant(data, image, p, spec_list) for p in PLATFORMS}
            images.append(ImageSpec(image, None, variants, digest=f"sha256:{i}"))
        else:
            images.append(ImageSpec(image, data.draw(st.sampled_from(spec_list))))
    pool = [nf.node for nf in cluster] + ["unknown-1"]
    for _ in range(2):  # the second round runs after a node changed platform and features
        names = data.draw(st.lists(st.sampled_from(pool), max_size=12), label="names")
        tags = data.draw(st.sampled_from([None, frozenset({"a"})]), label="tags")
        missing: MissingFeatures = data.draw(st.sampled_from(["fail", "pass"]), label="missing")
        mp: MissingPlatform = data.draw(st.sampled_from(["fail", "pass"]), label="missing platform")
        got = decide(
            images, table, names, tags=tags, missing_features=missing, missing_platform=mp, detail_limit=3
        )
        passed, failed, scores = _naive(images, table, names, tags, missing, mp)
        assert got.passed == passed
        assert set(got.failed) == set(failed)
        for name, why in failed.items():
            if why == NO_FEATURES_REASON or "has no" in why:
                assert got.failed[name] == why
            else:
                assert got.failed[name].startswith(f"{why}: ")
        assert got.score_list == scores
        victim = data.draw(st.sampled_from([nf.node for nf in cluster]), label="victim")
        table.set_node(
            data.draw(node_features(victim), label="new features"),
            data.draw(st.sampled_from(PLATFORMS), label="new platform"),
        )
