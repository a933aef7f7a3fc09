"""The file sources: NodeFeature directories and image->spec mappings, reloaded on change, never
losing the last good state to a broken file; single-flight lookups."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.errors import SpecLookupError
from extender.features.nodefeature import ParsedNodeFeature
from extender.sources.files import FileFeatures, FileSpecs, Stamp, _FileState, poll
from extender.sources.specs import SharedLookups, SingleFlight
from extender.spec.model import Spec
from tests.file_sources import SPEC_A, nf, put

SPEC_B = SPEC_A.replace(b"vfio-pci", b"nvidia")


def modules(source: FileFeatures, node: str) -> set[str]:
    f = source.table.node_features(node)
    assert f is not None
    return set(f.flags.get("kernel.loadedmodule", ()))


async def test_directory_load_update_remove(tmp_path: Path) -> None:
    put(
        tmp_path / "a.yaml",
        yaml.safe_dump_all([nf("a", "node-a", ["vfio-pci"]), nf("a-extra", "node-a", ["kvm"])]),
    )
    put(
        tmp_path / "b.json",
        orjson.dumps({"kind": "List", "items": [nf("b", "node-b", ["nvidia"], namespace=None)]}),
    )
    put(tmp_path / "notes.txt", "not a data file")
    put(tmp_path / ".a.yaml.swp", "editor temporary")
    src = FileFeatures(tmp_path)
    ready_before = src.ready
    assert await src.refresh() == {"node-a", "node-b"}
    assert not ready_before
    assert src.ready and src.errors == {}
    assert modules(src, "node-a") == {"vfio-pci", "kvm"}  # two objects of one node, merged
    assert modules(src, "node-b") == {"nvidia"}  # namespace defaulted, list unpacked
    gen = src.table.generation

    assert await src.refresh() == set()  # nothing changed on disk: nothing touched
    assert src.table.generation == gen

    put(tmp_path / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci", "i40e"])))  # a-extra dropped
    assert await src.refresh() == {"node-a"}
    assert modules(src, "node-a") == {"vfio-pci", "i40e"}
    assert src.table.generation > gen

    (tmp_path / "b.json").unlink()
    assert await src.refresh() == {"node-b"}
    assert "node-b" not in src.table


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        ("a: [\n", "did not find expected node content"),
        ("a: &x [1]\nb: *x\n", "aliases are not accepted"),
        (
            yaml.safe_dump({"kind": "NodeFeature", "metadata": {"name": "a"}, "spec": {}}),
            "missing or empty label",
        ),
        (yaml.safe_dump(nf("", "node-a", [])), "metadata.name: required"),
        ("just a string\n", "expected an object"),
    ],
)
async def test_a_broken_file_keeps_the_last_good_objects(tmp_path: Path, broken: str, fragment: str) -> None:
    put(tmp_path / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    src = FileFeatures(tmp_path)
    await src.refresh()
    put(tmp_path / "a.yaml", broken)
    assert await src.refresh() == set()
    assert modules(src, "node-a") == {"vfio-pci"}  # nothing lost
    (where, why), *_ = src.errors.items()
    assert where.endswith("a.yaml") and fragment in why
    put(tmp_path / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["nvidia"])))
    assert await src.refresh() == {"node-a"}
    assert modules(src, "node-a") == {"nvidia"} and src.errors == {}


async def test_a_broken_file_at_startup_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    put(tmp_path / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    put(tmp_path / "b.yaml", "{{{{")
    src = FileFeatures(tmp_path)
    await src.refresh()
    assert src.ready and "node-a" in src.table and len(src.table) == 1
    assert list(src.errors) == [str(tmp_path / "b.yaml")]
    (tmp_path / "b.yaml").unlink()
    await src.refresh()
    assert src.errors == {}


async def test_the_same_object_in_two_files_is_refused(tmp_path: Path) -> None:
    put(tmp_path / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    put(tmp_path / "b.yaml", yaml.safe_dump(nf("a", "node-a", ["nvidia"])))
    src = FileFeatures(tmp_path)
    await src.refresh()
    assert modules(src, "node-a") == {"vfio-pci"}
    assert "already defined in" in src.errors[str(tmp_path / "b.yaml")]


async def test_an_unreadable_directory_keeps_the_table(tmp_path: Path) -> None:
    d = tmp_path / "nf"
    d.mkdir()
    put(d / "a.yaml", yaml.safe_dump(nf("a", "node-a", ["vfio-pci"])))
    src = FileFeatures(d)
    await src.refresh()
    (d / "a.yaml").unlink()
    d.rmdir()
    assert await src.refresh() == set()
    assert "node-a" in src.table
    assert "cannot list" in src.errors[str(d)]


async def test_spec_mapping(tmp_path: Path) -> None:
    put(tmp_path / "a.yaml", SPEC_A)
    put(tmp_path / "bad.yaml", b"version: v1alpha1\ncompatibilities: 3\n")
    put(
        tmp_path / "images.yaml",
        "images:\n  reg/a:1: a.yaml\n  reg/bad:1: bad.yaml\n  reg/gone:1: gone.yaml\n",
    )
    src = FileSpecs(tmp_path / "images.yaml")
    assert await src.refresh()
    spec = await src.lookup("reg/a:1")
    assert isinstance(spec, Spec) and spec.compatibilities[0].rules[0].name == "vfio"
    assert await src.lookup("reg/other:1") is None  # not mapped: no spec, not an error
    with pytest.raises(SpecLookupError, match=r"bad\.yaml: compatibilities"):
        await src.lookup("reg/bad:1")
    with pytest.raises(SpecLookupError, match="cannot read spec file"):
        await src.lookup("reg/gone:1")
    assert set(src.errors) == {str(tmp_path / "bad.yaml"), str(tmp_path / "gone.yaml")}
    assert await src.lookup("docker.io/reg/a:1") is spec  # normalised on both sides

    assert not await src.refresh()  # unchanged
    put(tmp_path / "a.yaml", SPEC_B)
    put(tmp_path / "gone.yaml", SPEC_A)
    assert await src.refresh()
    changed = await src.lookup("reg/a:1")
    assert changed is not None and changed.digest != spec.digest
    assert await src.lookup("reg/gone:1") is not None
    assert set(src.errors) == {str(tmp_path / "bad.yaml")}

    put(tmp_path / "images.yaml", "images: {'reg/a:1': a.yaml}\n")
    await src.refresh()
    assert await src.lookup("reg/bad:1") is None and src.errors == {}


@pytest.mark.parametrize("breakage", ["invalid", "unreadable", "removed"])
async def test_a_spec_file_that_breaks_keeps_its_last_good_spec(
    tmp_path: Path, breakage: str, caplog: pytest.LogCaptureFixture
) -> None:
    put(tmp_path / "a.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/a:1: a.yaml\n")
    src = FileSpecs(tmp_path / "images.yaml")
    assert await src.refresh()
    good = await src.lookup("reg/a:1")
    assert good is not None and src.errors == {}

    if breakage == "invalid":
        put(tmp_path / "a.yaml", b"version: v1alpha1\ncompatibilities: 3\n")
    elif breakage == "unreadable":
        (tmp_path / "a.yaml").unlink()
        (tmp_path / "a.yaml").mkdir()  # a directory where the file was: open() fails
    else:
        (tmp_path / "a.yaml").unlink()
    with caplog.at_level("WARNING", logger="extender.sources.files"):
        await src.refresh()
    assert await src.lookup("reg/a:1") is good  # still in effect
    assert list(src.errors) == [str(tmp_path / "a.yaml")]
    assert any(
        r.levelname == "WARNING" and "a.yaml" in r.getMessage() and "last good spec" in r.getMessage()
        for r in caplog.records
    )
    assert not await src.refresh()  # the broken file is not re-read (nor re-logged) until it changes

    if breakage == "unreadable":
        (tmp_path / "a.yaml").rmdir()
    put(tmp_path / "a.yaml", SPEC_B)  # fixed: the new spec replaces the last good one
    assert await src.refresh()
    fixed = await src.lookup("reg/a:1")
    assert fixed is not None and fixed.digest != good.digest and src.errors == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("images: [a, b]\n", "expected a mapping of image reference"),
        ("images: {'reg/a:1': ''}\n", "expected a non-empty image reference"),
        ("- 1\n", "expected one mapping"),
        ("images: {\n", "expected"),
        (
            "images: {'nginx': a.yaml, 'docker.io/library/nginx:latest': a.yaml}\n",
            "the same image as another",
        ),
    ],
)
async def test_a_broken_mapping_keeps_the_previous_one(tmp_path: Path, text: str, fragment: str) -> None:
    put(tmp_path / "a.yaml", SPEC_A)
    put(tmp_path / "images.yaml", "images:\n  reg/a:1: a.yaml\n")
    src = FileSpecs(tmp_path / "images.yaml")
    await src.refresh()
    put(tmp_path / "images.yaml", text)
    await src.refresh()
    assert await src.lookup("reg/a:1") is not None
    assert fragment in src.errors[str(tmp_path / "images.yaml")]


async def test_poll_survives_a_failing_refresh(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    done = asyncio.Event()

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        if calls == 3:
            done.set()

    task = asyncio.create_task(poll(refresh, 0.001, "test"))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "reloading test failed" in caplog.text and "disk on fire" in caplog.text


class SlowSource:
    def __init__(self, result: Spec | Exception | None) -> None:
        self.result = result
        self.calls = 0
        self.release = asyncio.Event()

    async def lookup(self, image: str) -> Spec | None:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_concurrent_lookups_share_one() -> None:
    inner = SlowSource(None)
    shared = SharedLookups(inner)
    waiters = [asyncio.create_task(shared.lookup("reg/a:1")) for _ in range(20)]
    other = asyncio.create_task(shared.lookup("reg/b:1"))
    await asyncio.sleep(0)
    inner.release.set()
    assert await asyncio.gather(*waiters, other) == [None] * 21
    assert inner.calls == 2  # one per distinct image
    assert shared.flight.joined == 19 and len(shared.flight) == 0
    assert shared.counts.no_spec == 21
    inner.release.clear()
    again = asyncio.create_task(shared.lookup("reg/a:1"))  # finished lookups are not reused
    await asyncio.sleep(0)
    inner.release.set()
    await again
    assert inner.calls == 3


async def test_a_caller_giving_up_does_not_cancel_the_shared_lookup() -> None:
    inner = SlowSource(None)
    flight: SingleFlight[str, Spec | None] = SingleFlight()
    first = asyncio.create_task(flight.do("k", lambda: inner.lookup("k")))
    second = asyncio.create_task(flight.do("k", lambda: inner.lookup("k")))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    inner.release.set()
    assert await second is None
    assert first.cancelled() and inner.calls == 1


async def test_a_failed_lookup_fails_every_waiter() -> None:
    inner = SlowSource(SpecLookupError("registry answered 503"))
    shared = SharedLookups(inner)
    waiters = [asyncio.create_task(shared.lookup("reg/a:1")) for _ in range(5)]
    await asyncio.sleep(0)
    inner.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, SpecLookupError) and "503" in str(r) for r in results)
    assert inner.calls == 1 and shared.counts.error == 5


async def test_a_mapping_that_disappears_keeps_serving_and_recovers(tmp_path: Path) -> None:
    put(tmp_path / "a.yaml", SPEC_A)
    mapping = tmp_path / "images.yaml"
    put(mapping, "images:\n  reg/a:1: a.yaml\n")
    stamp = mapping.stat().st_mtime_ns
    src = FileSpecs(mapping)
    await src.refresh()
    saved = mapping.read_bytes()
    mapping.unlink()
    await src.refresh()
    assert await src.lookup("reg/a:1") is not None  # the last good mapping stays in effect
    assert "cannot read image mapping" in src.errors[str(mapping)]
    mapping.write_bytes(saved)
    os.utime(mapping, ns=(stamp, stamp))  # restored exactly as it was, timestamps included
    await src.refresh()
    assert src.errors == {} and await src.lookup("reg/a:1") is not None


class _QuadraticFileFeatures(FileFeatures):
    """The owner check as it was before the index: the owner map of every other file rebuilt for each
    file (quadratic, but obviously right). The reference the indexed version must agree with."""

    def _replace(self, path: Path, stamp: Stamp, objs: list[ParsedNodeFeature]) -> set[str]:
        mine = set(self._files[path].keys) if path in self._files else set()
        owners = {k: p for p, st in self._files.items() if p != path for k in st.keys}
        clash = next(((o.namespace, o.name) for o in objs if (o.namespace, o.name) in owners), None)
        if clash is not None:
            self.errors[str(path)] = (
                f"{path}: NodeFeature {clash[0]}/{clash[1]} is already defined in {owners[clash]}"
            )
            return set()
        self.errors.pop(str(path), None)
        touched: set[str] = set()
        new_keys = [(o.namespace, o.name) for o in objs]
        for key in mine - set(new_keys):
            touched |= self._objects.delete(*key)
        for o in objs:
            touched |= self._objects.upsert(o)
        self._files[path] = _FileState(stamp, new_keys)
        return touched


_FILES = ["a.yaml", "b.json", "c.yaml", "d.json"]
_OBJECTS = ["x", "y", "z"]
_FileOp = tuple[str, str, Any, bool]
_file_ops: st.SearchStrategy[_FileOp] = st.one_of(
    st.tuples(  # write a file holding some objects (several documents), or a broken one
        st.just("write"),
        st.sampled_from(_FILES),
        st.lists(st.tuples(st.sampled_from(_OBJECTS), st.sampled_from(["n1", "n2"])), max_size=3),
        st.booleans(),
    ),
    st.tuples(st.just("remove"), st.sampled_from(_FILES), st.just([]), st.just(False)),
    st.tuples(st.just("rename"), st.sampled_from(_FILES), st.sampled_from(_FILES), st.just(False)),
)


def _apply_file_op(d: Path, op: _FileOp) -> None:
    kind, name, arg, broken = op
    path = d / name
    if kind == "write":
        docs = [nf(obj, node, [f"m-{obj}-{node}-{len(arg)}"]) for obj, node in arg]
        if broken:
            put(path, "{{{{")
        elif name.endswith(".json"):
            put(path, orjson.dumps({"kind": "List", "items": docs}))
        else:
            put(path, yaml.safe_dump_all(docs))
    elif kind == "remove":
        path.unlink(missing_ok=True)
    elif path.exists():
        path.rename(d / arg)


def _state(src: FileFeatures) -> tuple[Any, ...]:
    table = {n: src.table.node_features(n) for n in src.table.node_names()}
    keys = {p: sorted(set(s.keys)) for p, s in src._files.items()}
    return (src.errors, table, keys)


@given(ops=st.lists(st.lists(_file_ops, min_size=1, max_size=3), min_size=1, max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_owner_index_agrees_with_rebuilding_it(tmp_path: Path, ops: list[list[Any]]) -> None:
    """Files added, rewritten, broken, removed and renamed, several changes per refresh: errors, table
    and objects are those of the quadratic owner check, and the index is exactly the files' keys."""
    d = Path(tempfile.mkdtemp(dir=tmp_path))

    async def run() -> None:
        src, ref = FileFeatures(d), _QuadraticFileFeatures(d)
        for batch in ops:
            for op in batch:
                _apply_file_op(d, op)
            assert await src.refresh() == await ref.refresh()
            assert _state(src) == _state(ref)
            assert src._owners == {k: p for p, s in src._files.items() for k in s.keys}

    asyncio.run(run())
