"""The README is the short way in, and it and the pages behind it in docs/ stay true:

* the README fits 150 lines and links every page of docs/; every relative link of the README and of
  docs/ leads to a file that exists (and an anchor to a heading of that file);
* every example image, node, request and file the README and docs/ name is one of the bundled
  examples (examples/images.yaml, examples/nodefeatures/, examples/requests/), so what a reader copies
  works against `make run`;
* the filter answer the README quotes is the stored answer tests/test_run_examples.py holds the
  service to;
* the prerequisites name the Python version pyproject.toml requires, and the supported Kubernetes
  version is the minor of the kube-scheduler that deploy/ runs;
* every `make` target the README names exists;
* no heading of the README or of docs/ names an issue number: a heading says what a section holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
MAX_LINES = 150
#: pages that name files of NFD's repository (its own examples/ and docs/), not of this one
NFD_PATHS = {"nfd-semantics.md"}

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
IMAGE = re.compile(r"registry\.example\.com/(?P<repo>[a-z0-9._/-]+)(?::(?P<tag>[\w.-]+)|@sha256)")
NODE = re.compile(
    r"(?:[?&]node=|--node |NODE |nodefeatures/|node-name: )(?P<node>[a-z][a-z0-9-]*[a-z0-9])(?![\w-])"
)
EXAMPLE_PATH = re.compile(r"(?<![\w./-])examples/(?P<path>[\w./-]*[\w/])")
#: the extender's own image: a placeholder for `make image IMAGE=...`, not an example
OWN_IMAGE = "compat-extender"
#: "issue 18", "Issue #3", "(#16)"
ISSUE_NUMBER = re.compile(r"(?i)\bissues?\s*#?\s*\d+|(?<![\w&])#\d+\b")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def example_images() -> set[str]:
    return set(yaml.safe_load((EXAMPLES / "images.yaml").read_text())["images"])


def example_nodes() -> set[str]:
    return {p.stem for p in (EXAMPLES / "nodefeatures").glob("*.yaml")}


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", path.read_text(), flags=re.M)}


def link_problems(path: Path) -> list[str]:
    problems: list[str] = []
    for m in LINK.finditer(path.read_text()):
        target = m["target"]
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.name}: {target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            problems.append(f"{path.name}: {target}: no such heading")
    return problems


def example_problems(text: str, where: str, *, paths: bool = True) -> list[str]:
    """Images, nodes and examples/ paths in ``text`` that are not bundled examples."""
    problems: list[str] = []
    images, nodes = example_images(), example_nodes()
    for m in IMAGE.finditer(text):
        if m["repo"].split("/")[-1] == OWN_IMAGE:
            continue
        if m["tag"] is None:  # by digest: the repository must be an example's
            if not any(i.startswith(f"registry.example.com/{m['repo']}:") for i in images):
                problems.append(f"{where}: {m[0]} is not a bundled example image")
        elif m[0] not in images:
            problems.append(f"{where}: {m[0]} is not a bundled example image")
    problems += [
        f"{where}: node {m['node']} is not a bundled example node"
        for m in NODE.finditer(text)
        if m["node"] not in nodes
    ]
    if paths:
        problems += [
            f"{where}: examples/{m['path']} does not exist"
            for m in EXAMPLE_PATH.finditer(text)
            if not (EXAMPLES / m["path"]).exists()
        ]
    return problems


def test_the_readme_is_short_and_links_every_page_of_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES
    linked = {m["target"].partition("#")[0] for m in LINK.finditer(text)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in linked]
    assert missing == []
    assert len(list(DOCS.glob("*.md"))) >= 8  # the pages the README's sections moved to


@pytest.mark.parametrize("path", pages(), ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    assert link_problems(path) == []


def test_the_link_check_sees_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# There\n\n## Sizing, in short\n")
    page.write_text(
        "[a](there.md) [b](there.md#sizing-in-short) [c](gone.md) [d](there.md#nope) [e](https://x.org/y)"
    )
    assert link_problems(page) == [
        "page.md: gone.md: no such file",
        "page.md: there.md#nope: no such heading",
    ]


@pytest.mark.parametrize("path", pages(), ids=lambda p: p.name)
def test_every_example_named_is_bundled(path: Path) -> None:
    problems = example_problems(path.read_text(), path.name, paths=path.name not in NFD_PATHS)
    assert problems == []


def test_the_scan_sees_the_examples_the_pages_name() -> None:
    """Guards against patterns that match nothing: the README and the deploy and spec-authoring pages
    do name example images, nodes and files."""
    texts = [p.read_text() for p in (README, DOCS / "deploy.md", DOCS / "spec-authoring.md")]
    for pattern, least in ((IMAGE, 15), (NODE, 4), (EXAMPLE_PATH, 15)):
        assert sum(len(pattern.findall(t)) for t in texts) >= least, pattern.pattern


def test_the_example_check_sees_what_is_not_bundled() -> None:
    text = (
        "curl '...explain?image=registry.example.com/hpc/solver:2024.2&node=gpu-h100-01' "
        "--image registry.example.com/hpc/cfd-solver:2024.2 --node gpu-z9-01 "
        "registry.example.com/compat-extender:0.1.0 examples/specs/solver.yaml "
        "examples/specs/hpc-solver.yaml "
        "registry.example.com/telco/dpdk-app@sha256:41d0"
    )
    assert example_problems(text, "x") == [
        "x: registry.example.com/hpc/solver:2024.2 is not a bundled example image",
        "x: node gpu-z9-01 is not a bundled example node",
        "x: examples/specs/solver.yaml does not exist",
    ]


def _json_after(text: str, marker: str) -> dict[str, object]:
    start = text.index("```json\n", text.index(marker)) + len("```json\n")
    doc: dict[str, object] = orjson.loads(text[start : text.index("```", start)])
    return doc


def test_the_quoted_filter_answer_is_the_stored_one() -> None:
    text = README.read_text()
    request = "examples/requests/filter-dpdk.json"
    assert f"-d @{request}" in text
    quoted = _json_after(text, f"-d @{request}")
    stored = orjson.loads((ROOT / request).with_suffix(".answer.json").read_bytes())
    assert quoted.keys() == stored.keys()
    for key in stored.keys() - {"FailedAndUnresolvableNodes"}:
        assert quoted[key] == stored[key], key
    failed = quoted["FailedAndUnresolvableNodes"]
    assert isinstance(failed, dict)
    more = failed.pop("…")
    assert failed and all(stored["FailedAndUnresolvableNodes"][n] == why for n, why in failed.items())
    assert more.startswith(f"{len(stored['FailedAndUnresolvableNodes']) - len(failed)} more")
    # every other request the README sends exists, with its stored answer
    for name in re.findall(r"-d @(examples/requests/[\w.-]+\.json)", text):
        assert (ROOT / name).with_suffix(".answer.json").is_file(), name


def test_prerequisites_and_supported_versions_match_the_repository() -> None:
    text = README.read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    (python,) = re.findall(r'^requires-python = ">=(\d+\.\d+)"$', pyproject, flags=re.M)
    assert f"Python {python} or later" in text
    assert "docker-registry" in text and "apt-get" in text and "sudo" in text
    scheduler = (ROOT / "deploy" / "overlays" / "second-scheduler" / "scheduler.yaml").read_text()
    (tag,) = re.findall(r"image: registry\.k8s\.io/kube-scheduler:v(\d+\.\d+\.\d+)", scheduler)
    minor = tag.rsplit(".", 1)[0]
    for page in (README, DOCS / "deploy.md"):
        (row,) = [line for line in page.read_text().splitlines() if line.startswith("| Kubernetes |")]
        assert row.split("|")[2].strip() == minor, page.name
    assert f"kube-scheduler v{tag}" in text
    assert "nfd.k8s-sigs.io/v1alpha1" in text


def test_the_make_targets_named_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][\w-]*)", README.read_text()))
    named |= set(re.findall(r"^make ([a-z][\w-]*)", README.read_text(), flags=re.M))
    assert {"run", "test", "bench", "image"} <= named
    assert named <= targets, named - targets


def test_no_heading_names_an_issue_number() -> None:
    assert ISSUE_NUMBER.search("## Sizing (issue 16)") and ISSUE_NUMBER.search("### Startup, #16")
    assert not ISSUE_NUMBER.search("### 5. Attach a spec to an image")
    headings = [
        f"{path.name}: {line}"
        for path in pages()
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    ]
    assert len(headings) > 50  # the scan reads the pages
    assert [h for h in headings if ISSUE_NUMBER.search(h)] == []
