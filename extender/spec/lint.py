"""Lint an image compatibility spec: every problem of a document, not only the first (pure: no I/O).

Three kinds of finding, each with the exact path of what it is about:

* **error** -- what :func:`extender.spec.parse.parse_spec` refuses, with its exact message. After the
  first error each compatibility set is checked on its own, so every set reports its first error
  (:func:`extender.spec.parse.check_spec`). An error in the YAML itself or in the document's shape
  (not a mapping) stops the decode: it is then the only error, and only the lint checks below that
  read the YAML tree still run.
* **warning** -- the parser's warnings: what NFD reports as an error on every node where it is
  compared (a regexp RE2 cannot compile, an integer bound ``strconv.Atoi`` refuses, ...), unknown keys,
  sets without rules, ``varsTemplate``.
* **pitfall** -- valid specs that do not mean what their author wrote (see examples/README.md):
  unquoted YAML 1.1 numbers (``0302`` is 194), ``0x``-prefixed or upper-case PCI/USB ids, module names
  with ``-``, feature names NFD does not publish, and a spec without compatibility sets.

:attr:`LintReport.failed` says whether a spec is invalid (errors), or, in strict mode, whether it has any
warning or pitfall at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from enum import Enum

from extender.spec.features_known import (
    HEX_ID_ATTRIBUTES,
    HEX_ID_FEATURES,
    MODULE_FEATURES,
    NFD_FEATURES,
    is_known_feature,
)
from extender.spec.parse import SpecCheck, check_spec
from extender.spec.yamlgo import Kind, Mapping, Node, Scalar, Sequence, SpecLimits, format_float32

__all__ = ["Finding", "LintReport", "Severity", "lint_spec"]


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"
    PITFALL = "pitfall"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True, slots=True)
class LintReport:
    check: SpecCheck
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Parser warnings and pitfalls (everything that is not an error)."""
        return tuple(f for f in self.findings if f.severity is not Severity.ERROR)

    def failed(self, strict: bool) -> bool:
        return bool(self.errors) or (strict and bool(self.findings))


def lint_spec(data: bytes, *, limits: SpecLimits | None = None) -> LintReport:
    """Every error, warning and pitfall of one spec document (YAML or JSON bytes)."""
    check = check_spec(data, limits=limits)
    findings = [Finding(Severity.ERROR, e.path, e.message) for e in check.errors]
    findings += [Finding(Severity.WARNING, w.path, w.message) for w in check.warnings]
    if check.root is not None:
        findings += _pitfalls(check.root)
    return LintReport(check, tuple(findings))


# ---------------------------------------------------------------------------------------------------
# The YAML tree walk. Field names match as Go's decoder matches them (case-insensitively); a value of
# the wrong shape is skipped here (the parser reports it).


def _fold(name: str) -> str:
    return name.lower().replace("\u017f", "s")


def _fields(node: Node | None, name: str) -> Iterator[Node]:
    if isinstance(node, Mapping):
        want = _fold(name)
        for key, value in node.items:
            if _fold(key) == want:
                yield value


def _items(node: Node | None) -> tuple[Node, ...]:
    return node.items if isinstance(node, Sequence) else ()


def _go_string(s: Scalar) -> str | None:
    """What a scalar becomes in a Go string field (``None`` for null)."""
    v = s.value
    if s.kind is Kind.STR:
        return s.text
    if s.kind is Kind.NULL:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float32(v)
    return None  # pragma: no cover - every kind is handled above


def _pitfalls(root: Node) -> list[Finding]:
    out: list[Finding] = []
    for compats in _fields(root, "compatibilities"):
        if isinstance(compats, Sequence) and not compats.items:
            out.append(
                Finding(
                    Severity.PITFALL,
                    "compatibilities",
                    "no compatibility sets: no set can match, so the image runs on no node "
                    "(docs/nfd-semantics.md §7.1)",
                )
            )
        for i, compat in enumerate(_items(compats)):
            for rules in _fields(compat, "rules"):
                for j, rule in enumerate(_items(rules)):
                    rpath = f"compatibilities[{i}].rules[{j}]"
                    for terms in _fields(rule, "matchFeatures"):
                        out += _terms(terms, f"{rpath}.matchFeatures")
                    for anys in _fields(rule, "matchAny"):
                        for a, any_of in enumerate(_items(anys)):
                            for terms in _fields(any_of, "matchFeatures"):
                                out += _terms(terms, f"{rpath}.matchAny[{a}].matchFeatures")
    return out


def _terms(terms: Node, path: str) -> list[Finding]:
    out: list[Finding] = []
    for k, term in enumerate(_items(terms)):
        tpath = f"{path}[{k}]"
        feature = ""
        for node in _fields(term, "feature"):
            if isinstance(node, Scalar) and (s := _go_string(node)) is not None:
                feature = s
        if feature and not is_known_feature(feature):
            guess = get_close_matches(feature.lower(), sorted(NFD_FEATURES), n=1)
            hint = f' (did you mean "{guess[0]}"?)' if guess else ""
            out.append(
                Finding(
                    Severity.PITFALL,
                    f"{tpath}.feature",
                    f'"{feature}" is not a feature NFD publishes{hint}: this term never matches '
                    "(custom features belong under local.)",
                )
            )
        fkey = feature.lower()
        for exprs in _fields(term, "matchExpressions"):
            if not isinstance(exprs, Mapping):
                continue
            texts = dict(exprs.key_texts)
            for key, expr in exprs.items:
                epath = f"{tpath}.matchExpressions.{key}"
                if key in texts:
                    out.append(
                        Finding(
                            Severity.PITFALL,
                            epath,
                            f"key {texts[key]} is not quoted: YAML 1.1 reads it as {key}, so NFD looks "
                            f'up "{key}" (write "{texts[key]}")',
                        )
                    )
                if fkey in MODULE_FEATURES and "-" in key:
                    out.append(_module(epath, key, "this expression looks up"))
                out += _values(expr, epath, fkey, key)
        for name in _fields(term, "matchName"):
            out += _values(name, f"{tpath}.matchName", fkey, None)
    return out


def _module(path: str, name: str, what: str) -> Finding:
    fixed = name.replace("-", "_")
    return Finding(
        Severity.PITFALL,
        path,
        f'{what} "{name}", but module names are listed as /proc/modules has them, with "_": write "{fixed}"',
    )


def _values(expr: Node, path: str, feature: str, attribute: str | None) -> list[Finding]:
    """Pitfalls in one expression's values (``attribute`` is ``None`` for ``matchName``)."""
    out: list[Finding] = []
    op = ""
    for node in _fields(expr, "op"):
        if isinstance(node, Scalar):
            op = _go_string(node) or op
    for values in _fields(expr, "value"):
        for i, item in enumerate(_items(values)):
            if not isinstance(item, Scalar) or (value := _go_string(item)) is None:
                continue
            vpath = f"{path}.value[{i}]"
            if item.kind is not Kind.STR and value != item.text:
                out.append(
                    Finding(
                        Severity.PITFALL,
                        vpath,
                        f"{item.text} is not quoted: YAML 1.1 reads it as the {item.kind.value} "
                        f'{value}, so NFD compares "{value}" (write "{item.text}")',
                    )
                )
            text = item.text  # what the author meant (an unquoted 0x10de is 4318, reported above)
            if (
                attribute in HEX_ID_ATTRIBUTES
                and feature in HEX_ID_FEATURES
                and op in ("In", "NotIn", "InRegexp")
            ):
                if text[:2].lower() == "0x":
                    out.append(
                        Finding(
                            Severity.PITFALL,
                            vpath,
                            f'"{text}": NFD writes {feature} ids as bare lower-case hex, without "0x" '
                            f'(write "{text[2:].lower()}")',
                        )
                    )
                elif op != "InRegexp" and text != text.lower():
                    out.append(
                        Finding(
                            Severity.PITFALL,
                            vpath,
                            f'"{text}": NFD writes {feature} ids in lower-case hex (write "{text.lower()}")',
                        )
                    )
            if attribute is None and feature in MODULE_FEATURES and op in ("In", "NotIn") and "-" in text:
                out.append(_module(vpath, text, "matchName compares"))
    return out
