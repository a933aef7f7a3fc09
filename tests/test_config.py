"""The config file and flags: documented defaults, strict keys and types, path resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from extender.cli.main import _parser
from extender.cli.server import config_from_args
from extender.config import Config, load_config, to_dict
from extender.errors import ConfigError
from extender.sources.kube import DEFAULT_MAX_STALE_SECONDS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "extender.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "extender.yaml"
    p.write_text(text)
    return p


def test_documented_file_spells_out_exactly_the_defaults() -> None:
    loaded = load_config(EXAMPLE)
    defaults = Config()
    # every top-level key of the config appears in the documented file, and nothing else does
    assert set(yaml.safe_load(EXAMPLE.read_text())) == set(to_dict(defaults))
    # its paths point at the bundled examples, relative to the file ...
    assert loaded.features.path.resolve() == ROOT / "examples" / "nodefeatures"
    assert loaded.specs.images.resolve() == ROOT / "examples" / "images.yaml"
    # ... and every other value is the code's default
    same_paths = dataclasses.replace(
        loaded,
        features=dataclasses.replace(loaded.features, path=defaults.features.path),
        specs=dataclasses.replace(loaded.specs, images=defaults.specs.images),
    )
    assert same_paths == defaults


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("listen: {prot: 80}\n", "listen.prot", "unknown key"),
        ("failurePolicy: fail\n", "failurePolicy", "expected one of Fail, Ignore"),
        ("listen: {port: '80'}\n", "listen.port", "expected an integer, got str"),
        ("listen: {port: 70000}\n", "listen.port", "out of range"),
        ("debug: {enabled: yes please}\n", "debug.enabled", "expected true or false"),
        ("detailLimit: 2.5\n", "detailLimit", "expected an integer, got float"),
        ("debug: 3\n", "debug", "expected a mapping, got int"),
        ("maxBodyBytes: true\n", "maxBodyBytes", "got bool"),
        ("features: {path: 7}\n", "features.path", "expected a string"),
        ("listen: {port: 9000}\ndebug: {port: 9000}\n", "debug.port", "must differ"),
        ("features: {source: kube}\n", "features.source", "expected one of files, kubernetes"),
        ("registry: {allow: ghcr.io}\n", "registry.allow", "expected a list, got str"),
        ("registry: {allow: [ghcr.io, 3]}\n", "registry.allow[1]", "expected a string, got int"),
        ("registry: {caFiles: [a]}\n", "registry.caFiles", "expected a mapping, got list"),
        ("registry: {caFiles: {a.io: 1}}\n", "registry.caFiles.a.io", "expected a string, got int"),
        ("registry: {platform: amd64}\n", "registry.platform", "expected os/arch[/variant]"),
        ("registry: {cache: {entries: 0}}\n", "registry.cache.entries", "out of range"),
        ("prefetch: {enabled: true}\n", "prefetch.enabled", "needs features.source: kubernetes"),
        ("features: {maxStaleSeconds: -1}\n", "features.maxStaleSeconds", "out of range [0, 86400]"),
        ("features: {maxStaleSeconds: 5m}\n", "features.maxStaleSeconds", "expected a number, got str"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.key == key
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "expected a mapping at the top, got list"),
        ("a: 1\n---\nb: 2\n", "expected one YAML document"),
        ("a: &x 1\nb: *x\n", "aliases are not accepted"),
        ("a: [\n", "did not find expected node content"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n")) == Config()


def test_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.yaml"
    p.write_text("features: {path: nf}\nspecs: {images: ../m.yaml}\n")
    c = load_config(p)
    assert c.features.path == tmp_path / "sub" / "nf"
    assert c.specs.images == tmp_path / "sub" / ".." / "m.yaml"


def test_registry_paths_relative_to_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "registry:\n  dockerConfig: secret/config.json\n  caFiles: {lab.io:5000: ca.pem, b.io: /etc/b.pem}\n"
        "  plainHttp: [lab.io:5000]\n"
    )
    r = load_config(p).registry
    assert r.dockerConfig == tmp_path / "secret" / "config.json"
    assert r.caFiles == {"lab.io:5000": tmp_path / "ca.pem", "b.io": Path("/etc/b.pem")}
    assert r.plainHttp == ("lab.io:5000",)
    assert load_config(write(tmp_path, "registry: {dockerConfig: ''}\n")).registry.dockerConfig is None


def test_prefetch_with_kubernetes_features(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "features: {source: kubernetes}\nprefetch: {enabled: true}\n"))
    assert c.prefetch.enabled and c.prefetch.schedulerNames == ("compat-scheduler",)


def test_max_stale_seconds(tmp_path: Path) -> None:
    assert Config().features.maxStaleSeconds == 300.0 == DEFAULT_MAX_STALE_SECONDS  # the source's own default
    assert to_dict(Config())["features"]["maxStaleSeconds"] == 300.0  # what --print-config shows
    c = load_config(write(tmp_path, "features: {source: kubernetes, maxStaleSeconds: 0}\n"))
    assert c.features.maxStaleSeconds == 0.0  # no bound
    assert load_config(write(tmp_path, "features: {maxStaleSeconds: 2.5}\n")).features.maxStaleSeconds == 2.5


def test_flags_override_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "listen: {port: 9000, host: 0.0.0.0}\nfailurePolicy: Ignore\n")
    args = _parser().parse_args(
        [
            "serve",
            "--config",
            str(cfg),
            "--port",
            "9100",
            "--no-debug",
            "--features",
            "x",
            "--reload-seconds",
            "0",
        ]
    )
    c = config_from_args(args)
    assert c.listen == type(c.listen)(host="0.0.0.0", port=9100)
    assert c.failurePolicy == "Ignore"
    assert c.debug.enabled is False
    assert c.features.path == (Path.cwd() / "x").resolve()  # flags: relative to the working directory
    assert c.features.reloadSeconds == 0 and c.specs.reloadSeconds == 0


def test_flag_values_are_validated_like_the_file() -> None:
    args = _parser().parse_args(["serve", "--port", "-1"])
    with pytest.raises(ConfigError) as err:
        config_from_args(args)
    assert err.value.key == "listen.port"


# -- several files ----------------------------------------------------------------------------------


def test_later_files_merge_over_earlier_ones(tmp_path: Path) -> None:
    """Mappings merge key by key at any depth; scalars and lists are replaced whole; each file's
    relative paths are relative to that file."""
    (tmp_path / "base").mkdir()
    (tmp_path / "over").mkdir()
    base = tmp_path / "base" / "extender.yaml"
    base.write_text(
        "listen: {host: 0.0.0.0, port: 9000}\n"
        "failurePolicy: Ignore\n"
        "registry:\n"
        "  allow: [a.io, b.io]\n"
        "  plainHttp: [lab.io]\n"
        "  caFiles: {a.io: a.pem}\n"
        "  cache: {tagSeconds: 5, entries: 7}\n"
    )
    over = tmp_path / "over" / "fragment.yaml"
    over.write_text(
        "registry:\n"
        "  allow: [c.io]\n"
        "  dockerConfig: secret/config.json\n"
        "  caFiles: {c.io: c.pem}\n"
        "  cache: {entries: 9}\n"
    )
    c = load_config([base, over])
    assert c.listen == type(c.listen)(host="0.0.0.0", port=9000)  # untouched by the fragment
    assert c.failurePolicy == "Ignore"
    assert c.registry.allow == ("c.io",)  # a list is replaced, not appended to
    assert c.registry.plainHttp == ("lab.io",)  # kept: the fragment does not name it
    assert c.registry.caFiles == {"a.io": tmp_path / "base" / "a.pem", "c.io": tmp_path / "over" / "c.pem"}
    assert c.registry.dockerConfig == tmp_path / "over" / "secret" / "config.json"
    assert (c.registry.cache.tagSeconds, c.registry.cache.entries) == (5, 9)
    # the order matters: the last file wins
    assert load_config([over, base]).registry.allow == ("a.io", "b.io")
    # one file in a list is that file
    assert load_config([base]) == load_config(base)
    assert load_config([]) == Config()


def test_a_fragment_may_set_a_mapping_to_a_scalar_and_is_then_checked(tmp_path: Path) -> None:
    base = write(tmp_path, "debug: {enabled: true, port: 9001}\n")
    over = tmp_path / "over.yaml"
    over.write_text("debug: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config([base, over])
    assert err.value.key == "debug" and "expected a mapping" in str(err.value)


def test_a_bad_key_in_one_of_several_files_names_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, "listen: {port: 9000}\n")
    over = tmp_path / "over.yaml"
    over.write_text("registry: {alow: [a.io]}\n")
    with pytest.raises(ConfigError) as err:
        load_config([base, over])
    assert err.value.key == "registry.alow"
    assert "unknown key" in str(err.value) and str(over) in str(err.value)
    # checks across keys see the merged result: prefetch in one file, its source in the other
    kube = tmp_path / "kube.yaml"
    kube.write_text("features: {source: kubernetes}\n")
    prefetch = tmp_path / "prefetch.yaml"
    prefetch.write_text("prefetch: {enabled: true}\n")
    assert load_config([kube, prefetch]).prefetch.enabled is True
    with pytest.raises(ConfigError) as err:
        load_config([prefetch])
    assert err.value.key == "prefetch.enabled"


def test_config_flag_repeats_and_flags_still_win(tmp_path: Path) -> None:
    base = write(tmp_path, "listen: {port: 9000, host: 0.0.0.0}\nregistry: {allow: [a.io]}\n")
    over = tmp_path / "over.yaml"
    over.write_text("listen: {port: 9001}\n")
    args = _parser().parse_args(["serve", "--config", str(base), "--config", str(over)])
    assert args.config == [base, over]
    c = config_from_args(args)
    assert c.listen == type(c.listen)(host="0.0.0.0", port=9001)
    assert c.registry.allow == ("a.io",)
    args = _parser().parse_args(["serve", "--config", str(base), "--config", str(over), "--port", "9100"])
    assert config_from_args(args).listen.port == 9100
