"""Citations point at something real: every ``docs/<name>.md`` that code, tests, benchmarks, examples
or the README mention exists in this repository's ``docs/``, and every section number they cite
(the section sign followed by ``N`` or ``N.M``) is a numbered heading of the doc it refers to. A bare
section number refers to the doc most recently named above it in the same file (a doc in ``docs/``
refers to itself until it names another), so a file has to name the doc before citing its sections.

Also: nothing in the repository points at research notes or seed files outside it (the directories
``shared`` next to the checkout or under ``/work``): the contract has to live in the repo.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SECTION_SIGN = "\u00a7"  # spelled as an escape so that this file cites nothing itself

#: Where citations may appear: the package, its tests, the benchmarks, and the prose around them.
SCANNED_DIRS = ("extender", "tests", "benchmarks", "examples", "config", "deploy", "docker", "docs")
SCANNED_FILES = ("README.md", "Makefile", "Dockerfile", "pyproject.toml")
TEXT_SUFFIXES = frozenset({".py", ".md", ".yaml", ".yml", ".json", ".toml", ".sh", ".txt"})

# A repo doc: "docs/<name>.md" not preceded by another path component (NFD's own
# "docs/usage/x.md" has a "/" after the first component and does not match either).
DOC_MENTION = r"(?<![\w./-])docs/(?P<doc>[\w.-]+\.md)\b"
CITATION = SECTION_SIGN + r"(?P<section>\d+(?:\.\d+)*)"
TOKEN = re.compile(f"{DOC_MENTION}|{CITATION}")
HEADING = re.compile(r"^#{1,6}\s+(?P<number>\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
# A path into the "shared" directory next to the checkout or under /work (the pattern is written so
# that its own text does not match it).
OUTSIDE = re.compile(r"(?:\.\.|/work)/shared\b")


def scanned_files() -> Iterator[Path]:
    for name in SCANNED_FILES:
        path = ROOT / name
        if path.is_file():
            yield path
    for directory in SCANNED_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path


def headings(doc: Path) -> set[str]:
    """The section numbers of a doc's numbered headings (``### 3.2 Title`` -> ``3.2``)."""
    return {m["number"] for m in HEADING.finditer(doc.read_text(encoding="utf-8"))}


def citation_problems(text: str, where: str, docs: Path, current: str | None = None) -> list[str]:
    """What is wrong with the citations in ``text``: docs that do not exist, section numbers that
    are not headings of the doc they refer to, and sections cited before any doc was named.
    ``current`` is the doc a bare citation refers to before the text names one."""
    problems: list[str] = []
    known: dict[str, set[str] | None] = {}
    for m in TOKEN.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m["doc"] is not None:
            current = m["doc"]
            if current not in known:
                path = docs / current
                known[current] = headings(path) if path.is_file() else None
            if known[current] is None:
                problems.append(f"{where}:{line}: docs/{current} does not exist")
            continue
        section = m["section"]
        if current is None:
            problems.append(f"{where}:{line}: {SECTION_SIGN}{section} cited without naming the doc first")
            continue
        if current not in known:
            path = docs / current
            known[current] = headings(path) if path.is_file() else None
        numbers = known[current]
        if numbers is not None and section not in numbers:
            problems.append(f"{where}:{line}: {SECTION_SIGN}{section} is not a heading of docs/{current}")
    return problems


def test_the_contract_doc_exists_with_numbered_sections() -> None:
    numbers = headings(DOCS / "nfd-semantics.md")
    # the sections the matcher's code and tests are organised by
    for section in ("1.2", "1.3", "2", "2.1", "2.2", "2.3", "3", "3.1", "3.2", "3.3", "4.1", "4.2", "4.3"):
        assert section in numbers, section


def test_every_citation_names_an_existing_doc_and_heading() -> None:
    problems: list[str] = []
    cited = 0
    for path in scanned_files():
        text = path.read_text(encoding="utf-8")
        cited += text.count(SECTION_SIGN)
        own = path.name if path.parent == DOCS else None
        problems += citation_problems(text, str(path.relative_to(ROOT)), DOCS, own)
    assert cited > 20  # the scan does see the citations (guards against a scan that reads nothing)
    assert problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see docs/nfd-semantics.md " + SECTION_SIGN + "3.2", []),
        ("see docs/nfd-semantics.md " + SECTION_SIGN + "3.9", ["is not a heading of docs/nfd-semantics.md"]),
        ("see docs" + "/no-such-doc.md", ["no-such-doc.md does not exist"]),
        (SECTION_SIGN + "3.2 before any doc", ["cited without naming the doc first"]),
        ("docs/nfd-semantics.md, then " + SECTION_SIGN + "4.2 and " + SECTION_SIGN + "42", ["42 is not"]),
        ("NFD's docs/usage/image-compatibility.md is not a repo doc", []),
    ],
)
def test_the_checker_reports_bad_citations(text: str, expected: list[str]) -> None:
    problems = citation_problems(text, "x.py", DOCS)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in scanned_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []
    assert OUTSIDE.search("see " + "/work" + "/shared/docs/x.md") and OUTSIDE.search("../" + "shared/x")
