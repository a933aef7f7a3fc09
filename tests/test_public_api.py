"""The public surface is exactly what extender.__all__ lists, and every name resolves."""

from __future__ import annotations

from types import ModuleType

import extender


def test_all_is_complete() -> None:
    assert len(set(extender.__all__)) == len(extender.__all__)
    for name in extender.__all__:
        assert hasattr(extender, name), name
    # submodules become package attributes when anything imports them: they are not API
    public = {n for n, v in vars(extender).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert public == set(extender.__all__)


def test_round_trip_through_the_public_api() -> None:
    spec = extender.parse_spec(
        b"version: v1alpha1\ncompatibilities:\n- tag: gpu\n  weight: 10\n  rules:\n  - name: vfio\n"
        b"    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n"
        b"        vfio-pci: {op: Exists}\n"
    )
    modules: tuple[tuple[str, dict[str, dict[str, str]]], ...] = (
        ("a", {"vfio-pci": {}}),
        ("b", {"nvidia": {}}),
    )
    objs = [
        {
            "kind": "NodeFeature",
            "metadata": {"name": n, "namespace": "nfd", "labels": {"nfd.node.kubernetes.io/node-name": n}},
            "spec": {"features": {"flags": {"kernel.loadedmodule": {"elements": mods}}}},
        }
        for n, mods in modules
    ]
    table = extender.table_from_nodefeatures(objs)
    for impl in ("reference", "vectorized"):
        result = extender.evaluate(spec, table, ["a", "b", "c"], tags=["gpu"], implementation=impl)
        assert result.any_matched().tolist() == [True, False, False]
        assert result.known.tolist() == [True, True, False]
    nf = table.node_features("b")
    assert nf is not None
    assert extender.explain(spec, nf).summary() == (
        "set #0 (tag gpu): rule 'vfio': kernel.loadedmodule.vfio-pci {op: \"Exists\"}: flag absent"
    )
