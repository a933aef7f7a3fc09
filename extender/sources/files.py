"""NodeFeatures and image specs from local files: the embedded default, and a way to run without a
cluster or a registry.

* :class:`FileFeatures` reads a directory of NodeFeature objects (``*.yaml``, ``*.yml``, ``*.json``;
  several YAML documents per file, or a ``List``/``NodeFeatureList`` with ``items``).
* :class:`FileSpecs` reads a mapping of image references to spec files::

      images:
        registry.example.com/ml/cuda-train:12.4: specs/cuda-train.yaml
        registry.example.com/hpc/genomics:3.1:       # a multi-arch image (docs/multi-arch.md)
          index: specs/genomics-common.yaml          # optional: the index's own artifact
          platforms:                                 # the platforms the index has, and their specs
            linux/amd64: specs/genomics-amd64.yaml
            linux/arm64: specs/genomics-arm64.yaml
            linux/ppc64le: null                      # a child without an artifact of its own

  References are normalised on both sides (``nginx`` is ``docker.io/library/nginx:latest``).

Both re-read what changed (by modification time and size) when :meth:`refresh` runs, which
:func:`poll` does every few seconds. Reading and decoding happen in a worker thread; only the
resulting table update runs on the event loop. A file that fails to load keeps its previous
contents in effect (nothing is lost because of a half-written file) and its error is reported
by ``errors`` until it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extender.errors import ExtenderError, SpecLookupError
from extender.features.nodefeature import DEFAULT_NFD_NAMESPACE, ParsedNodeFeature, parse_nodefeature
from extender.features.objects import NodeFeatureObjects, ObjectKey
from extender.images import normalise
from extender.match.table import FeatureTable
from extender.platforms import DEFAULT_PLATFORM, key_of
from extender.spec.model import Spec
from extender.spec.parse import SpecLimits, parse_spec
from extender.spec.variants import Child, ImageSpec, resolve_variants
from extender.yamlfile import load_file

log = logging.getLogger(__name__)

DEFAULT_PLATFORM_KEY = key_of(DEFAULT_PLATFORM)
SUFFIXES = (".yaml", ".yml", ".json")
Stamp = tuple[int, int]  # (mtime_ns, size)


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _scan(directory: Path) -> dict[Path, Stamp]:
    """Data files directly in ``directory`` (hidden files and editors' temporaries skipped)."""
    found: dict[Path, Stamp] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIXES) or not entry.is_file():
                continue
            st = entry.stat()
            found[Path(entry.path)] = (st.st_mtime_ns, st.st_size)
    return found


def objects_in(doc: Any, where: str) -> Iterable[tuple[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("items"), list) and doc.get("kind") != "NodeFeature":
        for i, item in enumerate(doc["items"]):
            yield f"{where}.items[{i}]", item
    else:
        yield where, doc


def read_nodefeature_file(path: Path, nfd_namespace: str) -> list[ParsedNodeFeature]:
    """Every NodeFeature object in one file (blocking). Raises ExtenderError naming the object."""
    parsed: list[ParsedNodeFeature] = []
    for d, doc in enumerate(load_file(path)):
        for where, obj in objects_in(doc, f"document {d}"):
            try:
                nf = parse_nodefeature(obj)
            except ExtenderError as exc:
                raise ExtenderError(f"{path}: {where}: {exc}") from None
            if not nf.name:
                raise ExtenderError(f"{path}: {where}: metadata.name: required")
            if not nf.namespace:
                nf = ParsedNodeFeature(nfd_namespace, nf.name, nf.node, nf.features, nf.resource_version)
            parsed.append(nf)
    return parsed


@dataclass(slots=True)
class _FileState:
    stamp: Stamp
    keys: list[ObjectKey] = field(default_factory=list)


class FileFeatures:
    """A feature table kept equal to a directory of NodeFeature files."""

    def __init__(
        self,
        directory: Path,
        *,
        nfd_namespace: str = DEFAULT_NFD_NAMESPACE,
        default_platform: str = DEFAULT_PLATFORM,
    ) -> None:
        self.directory = directory
        # a node's platform is told from its features (extender.features.platform), else this one
        self._table = FeatureTable(default_platform=default_platform)
        self._objects = NodeFeatureObjects(nfd_namespace=nfd_namespace)
        self._files: dict[Path, _FileState] = {}
        #: which file defines each object, kept with ``_files`` (a clash check per file must not
        #: rebuild it from every other file: that was quadratic in the number of files)
        self._owners: dict[ObjectKey, Path] = {}
        self._ready = False
        self.errors: dict[str, str] = {}  # file (or the directory) -> why its last load failed
        self.reloads = 0

    @property
    def table(self) -> FeatureTable:
        return self._table

    @property
    def ready(self) -> bool:
        return self._ready

    async def refresh(self) -> set[str]:
        """Apply whatever changed on disk; returns the nodes whose features changed."""
        try:
            stamps = await asyncio.to_thread(_scan, self.directory)
        except OSError as exc:
            # The directory itself is gone or unreadable: keep serving what we have.
            self.errors[str(self.directory)] = f"cannot list {self.directory}: {exc.strerror or exc}"
            return set()
        self.errors.pop(str(self.directory), None)
        changed = [p for p, s in stamps.items() if p not in self._files or self._files[p].stamp != s]
        removed = [p for p in self._files if p not in stamps]
        ns = self._objects.nfd_namespace
        loaded = await asyncio.to_thread(_load_many, changed, ns)
        touched: set[str] = set()
        for path in removed:
            for key in self._files.pop(path).keys:
                touched |= self._objects.delete(*key)
                if self._owners.get(key) == path:
                    del self._owners[key]
            self.errors.pop(str(path), None)
        for path, result in loaded.items():
            if isinstance(result, str):
                self.errors[str(path)] = result
                # keep the previous objects; retry when the file changes again
                state = self._files.setdefault(path, _FileState(stamps[path]))
                state.stamp = stamps[path]
                continue
            touched |= self._replace(path, stamps[path], result)
        for node in touched:
            merged = self._objects.merged(node)
            if merged is None:
                self._table.remove_node(node)
            else:
                self._table.set_node(merged)
        if changed or removed:
            self.reloads += 1
            log.info(
                "node features: %d files changed, %d removed, %d nodes updated",
                len(changed),
                len(removed),
                len(touched),
            )
        self._ready = True
        return touched

    def _replace(self, path: Path, stamp: Stamp, objs: list[ParsedNodeFeature]) -> set[str]:
        mine = set(self._files[path].keys) if path in self._files else set()
        owners = self._owners
        clash = next(
            ((o.namespace, o.name) for o in objs if owners.get((o.namespace, o.name), path) != path), None
        )
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
            del owners[key]
        for key in new_keys:
            owners[key] = path
        for o in objs:
            touched |= self._objects.upsert(o)
        self._files[path] = _FileState(stamp, new_keys)
        return touched


def _load_many(paths: list[Path], nfd_namespace: str) -> dict[Path, list[ParsedNodeFeature] | str]:
    out: dict[Path, list[ParsedNodeFeature] | str] = {}
    for path in sorted(paths):
        try:
            out[path] = read_nodefeature_file(path, nfd_namespace)
        except ExtenderError as exc:
            out[path] = str(exc)
    return out


@dataclass(frozen=True, slots=True)
class _SpecEntry:
    path: Path
    stamp: Stamp | None
    spec: Spec | None
    error: str


@dataclass(frozen=True, slots=True)
class MultiArch:
    """A multi-arch image in the mapping: the index's spec file (or None) and, per platform key the
    index has, its own spec file (or None)."""

    index: Path | None
    platforms: dict[str, Path | None]

    @property
    def paths(self) -> set[Path]:
        found = {p for p in self.platforms.values() if p is not None}
        return found | ({self.index} if self.index is not None else set())


def _multi_arch(path: Path, ref: str, entry: dict[Any, Any]) -> MultiArch:
    where = f"{path}: images.{ref}"
    unknown = set(entry) - {"index", "platforms"}
    if unknown:
        raise ExtenderError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (index, platforms)"
        )
    index = entry.get("index")
    if index is not None and (not isinstance(index, str) or not index):
        raise ExtenderError(f"{where}.index: expected a spec file")
    platforms = entry.get("platforms")
    if not isinstance(platforms, dict) or not platforms:
        raise ExtenderError(
            f"{where}.platforms: expected a mapping of os/arch[/variant] to a spec file or null"
        )
    out: dict[str, Path | None] = {}
    for name, spec_path in platforms.items():
        try:
            key = key_of(name) if isinstance(name, str) else ""
        except ExtenderError as exc:
            raise ExtenderError(f"{where}.platforms.{name}: {exc}") from None
        if not key:
            raise ExtenderError(f"{where}.platforms.{name}: expected os/arch[/variant]")
        if key in out:
            raise ExtenderError(f"{where}.platforms.{name}: the same platform as another entry ({key})")
        if spec_path is not None and (not isinstance(spec_path, str) or not spec_path):
            raise ExtenderError(f"{where}.platforms.{name}: expected a spec file or null")
        out[key] = None if spec_path is None else path.parent / spec_path
    return MultiArch(None if index is None else path.parent / index, out)


def read_image_map(path: Path) -> dict[str, Path | MultiArch]:
    """The ``images:`` mapping (blocking); spec paths are relative to the mapping file."""
    docs = load_file(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ExtenderError(f"{path}: expected one mapping with an 'images' key")
    images = docs[0].get("images")
    if images is None:
        images = {}
    if not isinstance(images, dict):
        raise ExtenderError(f"{path}: images: expected a mapping of image reference to spec file")
    out: dict[str, Path | MultiArch] = {}
    for ref, spec_path in images.items():
        if isinstance(ref, str) and ref and isinstance(spec_path, dict):
            entry: Path | MultiArch = _multi_arch(path, ref, spec_path)
        elif not isinstance(ref, str) or not ref or not isinstance(spec_path, str) or not spec_path:
            raise ExtenderError(
                f"{path}: images.{ref}: expected a non-empty image reference and a spec file "
                "(or, for a multi-arch image, a mapping with platforms)"
            )
        else:
            entry = path.parent / spec_path
        key = normalise(ref)
        if key in out:
            raise ExtenderError(f"{path}: images.{ref}: the same image as another entry ({key})")
        out[key] = entry
    return out


def _read_spec(path: Path, limits: SpecLimits | None) -> _SpecEntry:
    stamp = _stamp(path)
    try:
        with path.open("rb") as fh:
            data = fh.read((limits or SpecLimits()).max_bytes + 1)
    except OSError as exc:
        return _SpecEntry(path, stamp, None, f"cannot read spec file {path}: {exc.strerror or exc}")
    try:
        return _SpecEntry(path, stamp, parse_spec(data, limits=limits), "")
    except ExtenderError as exc:
        return _SpecEntry(path, stamp, None, f"spec file {path}: {exc}")


class FileSpecs:
    """image reference -> spec, from a mapping file and the spec files it names.

    An image that is not in the mapping has no spec. A spec file that stops loading (unreadable,
    removed, or no longer a valid spec) keeps its last good spec in effect, like a NodeFeature file,
    and is reported at WARNING and in ``errors`` (``/debug/sources``) until it loads again. A spec
    file that never loaded raises :class:`SpecLookupError` — the configured failure policy decides
    what that means for the pod, exactly as for a registry that cannot be reached.
    """

    def __init__(self, mapping: Path, *, limits: SpecLimits | None = None) -> None:
        self.mapping = mapping
        self._limits = limits
        self._stamp: Stamp | None = None
        self._images: dict[str, Path | MultiArch] = {}
        self._specs: dict[Path, _SpecEntry] = {}
        self._mapping_error = ""
        self.reloads = 0

    @property
    def errors(self) -> dict[str, str]:
        """The mapping file's or a spec file's path -> why it cannot be used now."""
        out = {str(self.mapping): self._mapping_error} if self._mapping_error else {}
        out.update((str(p), e.error) for p, e in self._specs.items() if e.error)
        return out

    @property
    def images(self) -> dict[str, Path | MultiArch]:
        """Normalised image reference -> spec file (or a multi-arch image's files)."""
        return dict(self._images)

    def known_images(self) -> list[str]:
        """Every mapped image (normalised references), no lookup: what the warm-up and
        /debug/whatif without a list of images go through."""
        return list(self._images)

    def _spec(self, path: Path) -> Spec:
        entry = self._specs.get(path)
        if entry is None or entry.spec is None:
            raise SpecLookupError(entry.error if entry else f"spec file {path} is not loaded yet")
        return entry.spec

    async def lookup(self, image: str) -> Spec | None:
        """The image's spec; for a multi-arch image, a ``linux/amd64`` node's (the index's when the
        mapping lists no such platform)."""
        found = self._images.get(normalise(image))
        if found is None:
            return None
        if isinstance(found, Path):
            return self._spec(found)
        item = await self.lookup_variants(image, (DEFAULT_PLATFORM_KEY,))
        variant = item.variant(DEFAULT_PLATFORM_KEY) if item is not None else None
        if variant is not None:
            return variant.spec
        return self._spec(found.index) if found.index is not None else None

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        found = self._images.get(normalise(image))
        if found is None:
            return None
        if isinstance(found, Path):
            return ImageSpec(image, self._spec(found))
        index = self._spec(found.index) if found.index is not None else None
        children: dict[str, Child | None] = {}
        for platform in platforms:
            if platform not in found.platforms:
                children[platform] = None
                continue
            own = found.platforms[platform]
            children[platform] = Child("", self._spec(own) if own is not None else None)
        item = resolve_variants(image, index, children)
        return item if item.has_spec else None

    async def refresh(self) -> bool:
        """Re-read the mapping and every spec file that changed; True when anything did."""
        stamp = await asyncio.to_thread(_stamp, self.mapping)
        changed = False
        if stamp is None:
            # keep the last good mapping; read it again whenever it comes back
            self._mapping_error = f"cannot read image mapping {self.mapping}"
        elif stamp != self._stamp:
            try:
                images = await asyncio.to_thread(read_image_map, self.mapping)
            except ExtenderError as exc:
                self._mapping_error = str(exc)
            else:
                self._mapping_error = ""
                self._images, changed = images, True
        self._stamp = stamp
        wanted = {p for e in self._images.values() for p in (e.paths if isinstance(e, MultiArch) else {e})}
        stamps = await asyncio.to_thread(lambda: {p: _stamp(p) for p in wanted})
        stale = [p for p in wanted if p not in self._specs or self._specs[p].stamp != stamps[p]]
        if stale:
            entries = await asyncio.to_thread(lambda: [_read_spec(p, self._limits) for p in stale])
            for entry in entries:
                self._specs[entry.path] = self._keep_last_good(entry)
            changed = True
        for p in [p for p in self._specs if p not in wanted]:
            del self._specs[p]
        if changed:
            self.reloads += 1
            log.info("image specs: %d images mapped, %d spec files", len(self._images), len(self._specs))
        return changed

    def _keep_last_good(self, entry: _SpecEntry) -> _SpecEntry:
        """``entry``, or, when it failed to load, the same failure carrying the last good spec."""
        if entry.spec is not None:
            return entry
        previous = self._specs.get(entry.path)
        if previous is not None and previous.spec is not None:
            log.warning("image specs: %s; its last good spec stays in effect", entry.error)
            return _SpecEntry(entry.path, entry.stamp, previous.spec, entry.error)
        log.warning("image specs: %s", entry.error)
        return entry


async def poll(refresh: Callable[[], Awaitable[object]], interval: float, name: str) -> None:
    """Call ``refresh`` every ``interval`` seconds until cancelled; errors are logged, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # a reload bug must not stop the reloads nor the server
            log.exception("reloading %s failed", name)
