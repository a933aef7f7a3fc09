"""The spec linter (extender/spec/lint.py) and the commands that use it: check-spec and attach."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from extender.cli.main import main
from extender.sources.host.discover import SOURCES, discover
from extender.spec.features_known import NFD_FEATURES, is_known_feature
from extender.spec.lint import Finding, LintReport, Severity, lint_spec
from extender.spec.parse import parse_spec
from tests.fake_host import FakeHost, arm64_host, intel_host

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "examples" / "specs"
HOST_SOURCES = ROOT / "extender" / "sources" / "host"


def _spec(terms: str, *, rules: str = "") -> bytes:
    """A one-set spec with one rule made of ``terms`` (YAML lines of matchFeatures, 4-space indent)."""
    body = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n" + terms
    return (body + rules).encode()


def _pitfalls(data: bytes) -> list[Finding]:
    return [f for f in lint_spec(data).findings if f.severity is Severity.PITFALL]


def _one(data: bytes) -> Finding:
    found = _pitfalls(data)
    assert len(found) == 1, found
    return found[0]


E0 = "compatibilities[0].rules[0].matchFeatures[0]"


# ---------------------------------------------------------------------------------------------------
# Each pitfall: found where it is, silent where it is not.


def test_unquoted_octal_value_is_a_pitfall_quoted_is_not() -> None:
    bad = _spec(
        "    - feature: pci.device\n      matchExpressions:\n        class: {op: In, value: [0302]}\n"
    )
    f = _one(bad)
    assert f.path == f"{E0}.matchExpressions.class.value[0]"
    assert "0302 is not quoted" in f.message and '"194"' in f.message and 'write "0302"' in f.message
    good = _spec(
        '    - feature: pci.device\n      matchExpressions:\n        class: {op: In, value: ["0302"]}\n'
    )
    assert _pitfalls(good) == []
    # a plain number that reads as written is fine (an integer bound)
    plain = _spec(
        "    - feature: kernel.version\n      matchExpressions:\n        major: {op: Ge, value: [5]}\n"
    )
    assert lint_spec(plain).findings == ()


@pytest.mark.parametrize(
    ("text", "reads"),
    [("6.10", '"6.1"'), ("yes", '"true"'), ("0x10", '"16"'), ("1_000", '"1000"')],
)
def test_other_yaml11_values_that_change(text: str, reads: str) -> None:
    data = _spec(
        f"    - feature: system.osrelease\n      matchExpressions:\n        x: {{op: In, value: [{text}]}}\n"
    )
    assert reads in _one(data).message


def test_unquoted_numeric_key_is_a_pitfall() -> None:
    bad = _spec("    - feature: kernel.config\n      matchExpressions:\n        0302: {op: Exists}\n")
    f = _one(bad)
    assert f.path == f"{E0}.matchExpressions.194" and "key 0302 is not quoted" in f.message
    good = _spec('    - feature: kernel.config\n      matchExpressions:\n        "0302": {op: Exists}\n')
    assert _pitfalls(good) == []


def test_0x_pci_id_is_a_pitfall_bare_hex_is_not() -> None:
    bad = _spec(
        '    - feature: pci.device\n      matchExpressions:\n        vendor: {op: In, value: ["0x10de"]}\n'
    )
    f = _one(bad)
    assert f.path == f"{E0}.matchExpressions.vendor.value[0]"
    assert 'without "0x"' in f.message and 'write "10de"' in f.message
    good = _spec(
        '    - feature: pci.device\n      matchExpressions:\n        vendor: {op: In, value: ["10de"]}\n'
    )
    assert _pitfalls(good) == []
    upper = _spec(
        '    - feature: usb.device\n      matchExpressions:\n        device: {op: In, value: ["1D6B"]}\n'
    )
    assert 'lower-case hex (write "1d6b")' in _one(upper).message
    # other attributes and other features may hold anything
    other = _spec(
        '    - feature: pci.device\n      matchExpressions:\n        driver: {op: In, value: ["0xAB"]}\n'
    )
    assert _pitfalls(other) == []


def test_unquoted_0x_id_reports_both_problems() -> None:
    data = _spec(
        "    - feature: pci.device\n      matchExpressions:\n        vendor: {op: In, value: [0x10de]}\n"
    )
    messages = [f.message for f in _pitfalls(data)]
    assert len(messages) == 2 and '"4318"' in messages[0] and 'write "10de"' in messages[1]


@pytest.mark.parametrize("feature", ["kernel.loadedmodule", "kernel.enabledmodule"])
def test_module_with_dash_is_a_pitfall_underscore_is_not(feature: str) -> None:
    bad = _spec(f"    - feature: {feature}\n      matchExpressions:\n        vfio-pci: {{op: Exists}}\n")
    f = _one(bad)
    assert f.path == f"{E0}.matchExpressions.vfio-pci" and 'write "vfio_pci"' in f.message
    good = _spec(f"    - feature: {feature}\n      matchExpressions:\n        vfio_pci: {{op: Exists}}\n")
    assert _pitfalls(good) == []
    by_name = _spec(f'    - feature: {feature}\n      matchName: {{op: In, value: ["nvidia-uvm"]}}\n')
    f = _one(by_name)
    assert f.path == f"{E0}.matchName.value[0]" and 'write "nvidia_uvm"' in f.message
    # a dash elsewhere is not a module name
    elsewhere = _spec("    - feature: system.osrelease\n      matchExpressions:\n        x-y: {op: Exists}\n")
    assert _pitfalls(elsewhere) == []


def test_unknown_feature_is_a_pitfall_known_ones_are_not() -> None:
    bad = _spec("    - feature: pci.devices\n      matchExpressions:\n        vendor: {op: Exists}\n")
    f = _one(bad)
    assert f.path == f"{E0}.feature" and '"pci.devices" is not a feature NFD publishes' in f.message
    assert 'did you mean "pci.device"' in f.message
    for name in ("pci.device", "PCI.Device", "rule.matched", "local.feature", "local.label"):
        good = _spec(f"    - feature: {name}\n      matchExpressions:\n        x: {{op: Exists}}\n")
        assert _pitfalls(good) == [], name


def test_no_compatibility_sets_is_a_pitfall() -> None:
    f = _one(b"version: v1alpha1\ncompatibilities: []\n")
    assert f.path == "compatibilities" and "runs on no node" in f.message
    report = lint_spec(b"version: v1alpha1\ncompatibilities: []\n")
    assert not report.failed(strict=False) and report.failed(strict=True)


def test_regexp_and_integer_bound_come_from_the_parser_once() -> None:
    data = _spec(
        "    - feature: kernel.version\n      matchExpressions:\n"
        '        major: {op: Gt, value: ["5.15"]}\n'
        "        full: {op: InRegexp, value: ['(']}\n"
        '        minor: {op: Ge, value: ["x"], type: version}\n'
    )
    report = lint_spec(data)
    assert not report.errors and not _pitfalls(data)
    messages = [str(f) for f in report.warnings]
    assert len(messages) == 3, messages
    assert any(
        m.startswith(f"{E0}.matchExpressions.major: value[0] '5.15' is not an integer") for m in messages
    )
    assert any(m.startswith(f"{E0}.matchExpressions.full: value[0] '(' is not a valid RE2") for m in messages)
    assert report.failed(strict=True) and not report.failed(strict=False)
    # the same bounds as integers are clean
    clean = _spec(
        '    - feature: kernel.version\n      matchExpressions:\n        major: {op: Gt, value: ["5"]}\n'
    )
    assert lint_spec(clean).findings == ()


# ---------------------------------------------------------------------------------------------------
# Several problems in one file.


MANY = b"""\
version: v1alpha1
compatibilities:
- rules:
  - name: a
    matchFeatures:
    - feature: kernel.loadedmodule
      matchExpressions:
        vfio-pci: {op: Exists}
    - feature: pci.device
      matchExpressions:
        class: {op: In, value: [0302]}
        vendor: {op: in, value: ["0x10de"]}
- rules: 3
- rules:
  - matchFeatures:
    - feature: cpu.cpuidd
      matchExpressions:
        AVX2: {op: Exists, value: ["x"]}
- rules:
  - matchFeatures:
    - feature: cpu.cpuid
      matchExpressions:
        AVX2: {op: Exists}
"""


def test_every_set_reports_its_first_error_and_all_pitfalls() -> None:
    report = lint_spec(MANY)
    with pytest.raises(Exception) as first:
        parse_spec(MANY)
    errors = [str(e) for e in report.errors]
    assert str(first.value) in errors  # the parser's own first error, unchanged
    assert errors == [
        'compatibilities[0].rules[0].matchFeatures[1].matchExpressions.vendor: unknown op "in" '
        '(op names are case-sensitive: did you mean "In"?)',
        "compatibilities[1].rules: expected a list, got an integer ('3')",
        'compatibilities[2].rules[0].matchFeatures[0].matchExpressions.AVX2: op "Exists" takes no values '
        "but has 1: NFD fails on every node",
    ]
    # (the "0x10de" of the unknown op "in" is not looked at: only In/NotIn/InRegexp compare ids)
    paths = [f.path for f in report.findings if f.severity is Severity.PITFALL]
    assert paths == [
        "compatibilities[0].rules[0].matchFeatures[0].matchExpressions.vfio-pci",
        "compatibilities[0].rules[0].matchFeatures[1].matchExpressions.class.value[0]",
        "compatibilities[2].rules[0].matchFeatures[0].feature",
    ]
    assert report.check.spec is None and report.failed(strict=False)


def test_a_yaml_syntax_error_is_the_only_finding() -> None:
    report = lint_spec(b"version: v1alpha1\ncompatibilities: [\n")
    assert len(report.findings) == 1 and report.errors[0].message.startswith("invalid YAML")


def test_a_top_level_error_still_checks_the_sets() -> None:
    data = b"version: v2\ncompatibilities:\n- rules: 3\n- rules: [{matchFeatures: [{feature: pci.dev}]}]\n"
    report = lint_spec(data)
    assert [f.path for f in report.errors] == ["version", "compatibilities[0].rules"]
    assert [f.path for f in report.warnings] == ["compatibilities[1].rules[0].matchFeatures[0].feature"]


# ---------------------------------------------------------------------------------------------------
# The list of NFD's features.


def test_the_feature_list_covers_everything_host_discovery_produces(tmp_path: Path) -> None:
    seen: set[str] = set()
    for i, build in enumerate((intel_host, arm64_host)):
        host = build(FakeHost.at(tmp_path / str(i)))
        seen |= discover(host.paths).features.feature_names()
    assert seen <= NFD_FEATURES, sorted(seen - NFD_FEATURES)
    # and every "<source>.<feature>" literal in the host sources (some appear only on some hosts)
    pattern = re.compile(rf"({'|'.join(SOURCES)})\.[a-z_]+")
    literals: set[str] = set()
    for path in HOST_SOURCES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and pattern.fullmatch(node.value)
            ):
                literals.add(node.value)
            if isinstance(node, ast.JoinedStr):  # f"cpu.{name}" for name in (...): the names are literal
                head = node.values[0]
                if isinstance(head, ast.Constant) and str(head.value) == "cpu.":
                    literals |= {
                        f"cpu.{n}" for n in ("cstate", "pstate", "rdt", "security", "sst", "coprocessor")
                    }
    assert literals and literals <= NFD_FEATURES, sorted(literals - NFD_FEATURES)
    assert all(is_known_feature(f) for f in NFD_FEATURES)


# ---------------------------------------------------------------------------------------------------
# The bundled examples.


@pytest.mark.parametrize("name", ["cuda-train", "rocm-pytorch", "dpdk-app", "hpc-solver"])
def test_the_good_examples_are_clean_under_strict(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = lint_spec((SPECS / f"{name}.yaml").read_bytes())
    assert report.findings == (), report.findings
    assert main(["check-spec", "--strict", str(SPECS / f"{name}.yaml")]) == 0
    assert ": ok, " in capsys.readouterr().out


def test_the_seed_examples_have_the_findings_their_readme_names(capsys: pytest.CaptureFixture[str]) -> None:
    article = lint_spec((SPECS / "seed-article.yaml").read_bytes())
    assert not article.errors
    text = "\n".join(str(f) for f in article.findings)
    assert 'write "vfio_pci"' in text and 'write "10de"' in text and 'write "0300"' in text
    docs = lint_spec((SPECS / "seed-nfd-docs.yaml").read_bytes())
    assert not docs.errors and any('write "vfio_pci"' in str(f) for f in docs.findings)
    seeds = [str(SPECS / "seed-article.yaml"), str(SPECS / "seed-nfd-docs.yaml")]
    assert main(["check-spec", *seeds]) == 0  # valid specs: warnings only
    out = capsys.readouterr().out
    assert out.count(": ok, ") == 2 and "  pitfall: " in out
    assert main(["check-spec", "--strict", *seeds]) == 1
    assert "FAILED --strict" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------
# The commands.


def test_check_spec_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = tmp_path / "many.yaml"
    many.write_bytes(MANY)
    assert main(["check-spec", str(many)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{many}: INVALID: compatibilities[0].rules[0].matchFeatures[1].matchExpressions.vendor: "
        'unknown op "in"' in out
    )
    assert "  error: compatibilities[1].rules: expected a list" in out
    assert "  pitfall: compatibilities[2].rules[0].matchFeatures[0].feature" in out
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: v1alpha1\ncompatibilities: []\n")
    assert main(["check-spec", str(empty)]) == 0
    assert "  pitfall: compatibilities: no compatibility sets" in capsys.readouterr().out
    assert main(["check-spec", "--strict", str(empty)]) == 1
    assert main(["check-spec", str(empty), str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_spec_help_names_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check-spec", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--strict" in out and "0  every file is valid" in out and "2  a file cannot be read" in out


def test_attach_refuses_before_contacting_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 127.0.0.1:9 (discard) is never asked: the spec is refused first
    image = "127.0.0.1:9/lint/app:1"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(MANY)
    assert main(["attach", "--image", image, "--spec", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "INVALID: compatibilities[0]" in err and "  error: compatibilities[1].rules" in err
    assert "not attached" in err
    seed = str(SPECS / "seed-article.yaml")
    assert main(["attach", "--strict", "--image", image, "--spec", seed]) == 1
    err = capsys.readouterr().err
    assert 'write "vfio_pci"' in err and "FAILED --strict" in err and "not attached" in err


def test_lint_report_failed() -> None:
    report = LintReport(lint_spec(b"version: v1alpha1\ncompatibilities: []\n").check, ())
    assert not report.failed(strict=True)
