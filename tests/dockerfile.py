"""Just enough of a Dockerfile reader for the tests: stages, their instructions (continuations joined,
comments dropped, leading ``--flag=value`` options split off), ENV/LABEL pairs, ARG defaults, and a
``.dockerignore`` matcher. Used by tests/test_dockerfile.py (to lint and replay the build) and
tests/test_deploy.py (the image's USER and CMD against the manifests)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    flags: tuple[tuple[str, str], ...]  # leading --name=value options, in order (RUN may repeat --mount)
    rest: str  # everything after the flags
    line: int  # where it starts (1-based)

    def flag(self, name: str) -> str | None:
        values = [v for k, v in self.flags if k == name]
        assert len(values) <= 1, f"line {self.line}: --{name} given {len(values)} times"
        return values[0] if values else None

    def words(self) -> list[str]:
        """Shell form split like a shell would (no expansion); exec form decoded from JSON."""
        if self.rest.startswith("["):
            decoded = json.loads(self.rest)
            assert isinstance(decoded, list) and all(isinstance(w, str) for w in decoded)
            return decoded
        return shlex.split(self.rest)

    def pairs(self) -> dict[str, str]:
        """ENV / LABEL / ARG ``key=value`` pairs (ARG without a default: empty string)."""
        out: dict[str, str] = {}
        for word in shlex.split(self.rest):
            key, _, value = word.partition("=")
            out[key] = value
        return out


@dataclass
class Stage:
    base: str  # the FROM image (or an earlier stage's name)
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments (also inside continuations) and parser directives; blank lines
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        out.append((start, " ".join(part for part in current if part)))
        current = []
    assert not current, "the Dockerfile ends in a line continuation"
    return out


_FLAG = re.compile(r"--([a-z-]+)=(\S+)")


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line, logical in _logical_lines(text):
        keyword, _, rest = logical.partition(" ")
        keyword = keyword.upper()
        flags: list[tuple[str, str]] = []
        rest = rest.strip()
        while rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            match = _FLAG.fullmatch(word)
            assert match, f"line {line}: cannot read the option {word!r}"
            flags.append((match.group(1), match.group(2)))
            rest = rest.strip()
        instruction = Instruction(keyword, tuple(flags), rest, line)
        if keyword == "FROM":
            words = rest.split()
            assert len(words) in (1, 3), f"line {line}: FROM image [AS name]"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages or keyword == "ARG", f"line {line}: {keyword} before FROM"
            if stages:
                stages[-1].instructions.append(instruction)
    return stages


def read() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def stage_named(stages: list[Stage], name: str) -> Stage:
    (found,) = [s for s in stages if s.name == name]
    return found


def lineage(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    names = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[0].base in names:
        chain.insert(0, names[chain[0].base])
    return chain


def env(
    stages: list[Stage],
    stage: Stage,
    *,
    before: Instruction | None = None,
    initial: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment a stage's containers see (ENV inherited through FROM <stage>), or the one an
    instruction of it sees (``before``). ``$VAR`` in values expands from ``initial`` (the base image's
    environment) and the ENV before it, as Docker does."""
    out = dict(initial or {})
    for s in lineage(stages, stage):
        for instruction in s.instructions:
            if instruction is before:
                return out
            if instruction.keyword == "ENV":
                out.update({k: substitute(v, out) for k, v in instruction.pairs().items()})
    assert before is None, "the instruction is not in that stage"
    return out


def arg_defaults(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for instruction in stage.all("ARG"):
        out.update(instruction.pairs())
    return out


def substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value
    )


def user_ids(stage: Stage) -> tuple[int, int]:
    """The final USER as numeric uid, gid (a name is an error: runAsNonRoot cannot check it)."""
    user = stage.last("USER")
    assert user is not None, "no USER: the image would run as root"
    uid, _, gid = user.rest.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {user.rest!r} is not numeric uid:gid"
    return int(uid), int(gid)


class DockerIgnore:
    """``.dockerignore`` rules: patterns relative to the context root, ``**`` for any depth, ``!``
    re-includes, the last matching rule wins, and a rule matching a directory covers what is in it."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:] if negate else line
            self.rules.append((negate, pattern.strip().strip("/")))

    @staticmethod
    def _matches(pattern: str, path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern[3:]
            return any(
                fnmatch.fnmatchcase("/".join(parts[i : j + 1]), tail)
                for i in range(len(parts))
                for j in range(i, len(parts))
            )
        return any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)

    def excluded(self, path: str) -> bool:
        verdict = False
        for negate, pattern in self.rules:
            if self._matches(pattern, path):
                verdict = not negate
        return verdict
