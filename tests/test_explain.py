"""Explanations: consistent with the verdicts on every input, and readable on real ones."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings

from extender.features.nodefeature import NodeFeatures
from extender.match.explain import ERROR, MATCHED, explain
from extender.match.reference import evaluate_node
from extender.match.result import Status
from extender.spec.model import Spec
from tests.fuzz import examples
from tests.helpers import R, S, T, X, node
from tests.strategies import node_features, specs


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), nf=node_features("n"))
def test_account_agrees_with_verdicts(spec: Spec, nf: NodeFeatures) -> None:
    account = explain(spec, nf)
    verdicts = evaluate_node(spec, nf, spec.selected_sets(None))
    assert [s.index for s in account.sets] == [v.index for v in verdicts]
    for s, v in zip(account.sets, verdicts, strict=True):
        rule_status = [r.status for r in s.rules]
        if v.status == Status.ERROR:
            assert ERROR in rule_status
        elif v.status == Status.MATCHED:
            assert all(r == MATCHED for r in rule_status)
        else:
            assert ERROR not in rule_status and any(r != MATCHED for r in rule_status)
        for r in s.rules:
            terms = [t.status for t in r.match_features]
            if r.status == MATCHED:
                assert all(t == MATCHED for t in terms)
                assert not r.match_any or any(all(t.status == MATCHED for t in el) for el in r.match_any)
            if r.status != ERROR and all(t == MATCHED for t in terms):
                any_ok = not r.match_any or any(all(t.status == MATCHED for t in el) for el in r.match_any)
                assert (r.status == MATCHED) == any_ok
    orjson.dumps(account.to_dict())
    assert account.render_text()
    assert account.summary()


GPU_SPEC = S(
    [
        R(
            T("kernel.loadedmodule", {"vfio-pci": X("Exists")}),
            T("pci.device", {"vendor": X("In", "10de"), "class": X("In", "0300")}),
            name="gpu-and-iommu",
        )
    ]
)


def test_summary_names_the_failing_expression_and_value() -> None:
    nf = node(
        "worker-3",
        flags={"kernel.loadedmodule": ["nvidia"]},
        instances={"pci.device": [{"vendor": "8086", "class": "0300"}, {"vendor": "15b3", "class": "0200"}]},
    )
    account = explain(GPU_SPEC, nf)
    assert not account.compatible
    assert account.summary() == (
        "set #0: rule 'gpu-and-iommu': kernel.loadedmodule.vfio-pci {op: \"Exists\"}: flag absent"
    )
    pci = account.sets[0].rules[0].match_features[1]
    assert pci.status == "not matched"
    vendor = pci.expressions[0]
    assert vendor.found == "0 of 2 instances match (values: '15b3', '8086')"


def test_no_single_instance_note() -> None:
    nf = node(
        flags={"kernel.loadedmodule": ["vfio-pci"]},
        instances={"pci.device": [{"vendor": "10de", "class": "0200"}, {"vendor": "8086", "class": "0300"}]},
    )
    term = explain(GPU_SPEC, nf).sets[0].rules[0].match_features[1]
    assert term.note == "no single instance satisfies every expression"


def test_error_is_explained() -> None:
    spec = S([R(T("kernel.version", {"full": X("Gt", "5.4", type="version")}), name="kernel")])
    nf = node(attrs={"kernel.version": {"full": "5.14.0-427.13.1.el9_4.x86_64"}})
    account = explain(spec, nf)
    assert account.sets[0].status == "error"
    assert (
        account.summary()
        == "set #0: evaluation error in rule 'kernel': not a version '5.14.0-427.13.1.el9_4.x86_64'"
    )
    expr = account.sets[0].rules[0].match_features[0].expressions[0]
    assert expr.status == "error" and expr.found == "value '5.14.0-427.13.1.el9_4.x86_64'"
    text = account.render_text()
    assert "kernel.version.full" in text and "ERROR" in text


def test_unknown_node() -> None:
    account = explain(GPU_SPEC, None, node="ghost")
    d = account.to_dict()
    assert d["node"] == "ghost" and d["known"] is False and d["compatible"] is False
    assert "feature not found" in account.render_text()
