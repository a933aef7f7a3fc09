"""The KubeSchedulerConfigurations this project ships (config/kube-scheduler*.yaml and the second
scheduler's copy in deploy/): every field is one kube-scheduler v1 knows (its config decoder is
strict), with the types and the rules its validation applies to extenders; the out-of-cluster example
names its kubeconfig (kube-scheduler --config ignores --kubeconfig), equals the in-cluster one
otherwise, and calls the extender that its documented `compat-extender serve` command line starts.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from extender.cli.main import _parser
from extender.cli.server import config_from_args
from tests.project import SCRIPT_NAME

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
IN_CLUSTER = CONFIG / "kube-scheduler.yaml"
OUT_OF_CLUSTER = CONFIG / "kube-scheduler-out-of-cluster.yaml"
SCHEDULER_CONFIGS = {
    **{str(p.relative_to(ROOT)): p for p in sorted(CONFIG.glob("kube-scheduler*.yaml"))},
    "deploy/overlays/second-scheduler/kube-scheduler.yaml": ROOT
    / "deploy"
    / "overlays"
    / "second-scheduler"
    / "kube-scheduler.yaml",
}

Doc = dict[str, Any]

# kubescheduler.config.k8s.io/v1 (k8s.io/kube-scheduler/config/v1 and component-base's
# config/v1alpha1): the fields of each level. Nested plugin sets are not used here and not listed.
TOP = {
    "apiVersion",
    "kind",
    "parallelism",
    "leaderElection",
    "clientConnection",
    "enableProfiling",
    "enableContentionProfiling",
    "percentageOfNodesToScore",
    "podInitialBackoffSeconds",
    "podMaxBackoffSeconds",
    "profiles",
    "extenders",
    "delayCacheUntilActive",
}
LEADER_ELECTION = {
    "leaderElect",
    "leaseDuration",
    "renewDeadline",
    "retryPeriod",
    "resourceLock",
    "resourceName",
    "resourceNamespace",
}
CLIENT_CONNECTION = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}
PROFILE = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
EXTENDER = {
    "urlPrefix",
    "filterVerb",
    "preemptVerb",
    "prioritizeVerb",
    "weight",
    "bindVerb",
    "enableHTTPS",
    "tlsConfig",
    "httpTimeout",
    "nodeCacheCapable",
    "managedResources",
    "ignorable",
}
MANAGED_RESOURCE = {"name", "ignoredByScheduler"}
TLS_CONFIG = {"insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData", "caData"}
BOOLS = {"leaderElect", "enableHTTPS", "nodeCacheCapable", "ignorable", "ignoredByScheduler", "insecure"}
# a Go time.Duration as metav1.Duration parses it
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
# an extended resource: a domain-prefixed name outside kubernetes.io (requests.* is not allowed)
EXTENDED_RESOURCE = re.compile(
    r"^(?!.*kubernetes\.io/)(?!requests\.)[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def problems(doc: Any) -> list[str]:
    """What kube-scheduler v1 would refuse in a KubeSchedulerConfiguration: unknown fields (strict
    decoding), wrong types, and its validation of extenders."""
    out: list[str] = []

    def fields(where: str, value: Any, known: set[str]) -> Doc:
        if not isinstance(value, dict):
            out.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return {}
        out.extend(f"{where}.{k}: unknown field" for k in value if k not in known)
        for k in BOOLS & set(value):
            if not isinstance(value[k], bool):
                out.append(f"{where}.{k}: expected true or false")
        return value

    top = fields("", doc, TOP)
    if (top.get("apiVersion"), top.get("kind")) != (
        "kubescheduler.config.k8s.io/v1",
        "KubeSchedulerConfiguration",
    ):
        out.append("apiVersion/kind: not a kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration")
    fields(".leaderElection", top.get("leaderElection", {}), LEADER_ELECTION)
    client = fields(".clientConnection", top.get("clientConnection", {}), CLIENT_CONNECTION)
    if not isinstance(client.get("kubeconfig", ""), str):
        out.append(".clientConnection.kubeconfig: expected a string")
    names = []
    for i, profile in enumerate(top.get("profiles", [])):
        names.append(fields(f".profiles[{i}]", profile, PROFILE).get("schedulerName", "default-scheduler"))
    if len(set(names)) != len(names):
        out.append(f".profiles: duplicate schedulerName in {names}")
    binders = 0
    for i, raw in enumerate(top.get("extenders", [])):
        where = f".extenders[{i}]"
        ext = fields(where, raw, EXTENDER)
        url = urlsplit(str(ext.get("urlPrefix", "")))
        if url.scheme not in ("http", "https") or not url.hostname:
            out.append(f"{where}.urlPrefix: not an http(s) URL")
        if ext.get("prioritizeVerb"):
            weight = ext.get("weight")
            if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
                out.append(f"{where}.weight: must be a positive integer when prioritizeVerb is set")
        binders += bool(ext.get("bindVerb"))
        if "httpTimeout" in ext and not GO_DURATION.match(str(ext["httpTimeout"])):
            out.append(f"{where}.httpTimeout: not a duration")
        if "tlsConfig" in ext:
            fields(f"{where}.tlsConfig", ext["tlsConfig"], TLS_CONFIG)
        seen: set[str] = set()
        for j, resource in enumerate(ext.get("managedResources", [])):
            r = fields(f"{where}.managedResources[{j}]", resource, MANAGED_RESOURCE)
            name = r.get("name", "")
            if not EXTENDED_RESOURCE.match(str(name)):
                out.append(f"{where}.managedResources[{j}].name: {name!r} is not an extended resource name")
            if name in seen:
                out.append(f"{where}.managedResources[{j}].name: duplicate {name!r}")
            seen.add(name)
    if binders > 1:
        out.append(".extenders: at most one extender may set bindVerb")
    return out


def load(path: Path) -> Doc:
    doc: Doc = yaml.safe_load(path.read_text())
    return doc


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_is_valid_for_kube_scheduler_v1(name: str) -> None:
    assert problems(load(SCHEDULER_CONFIGS[name])) == []


def _two_binders(doc: Doc) -> None:
    doc["extenders"][0]["bindVerb"] = "bind"
    doc["extenders"].append({**doc["extenders"][0], "urlPrefix": "http://other.example:80"})


BROKEN: dict[str, tuple[Callable[[Doc], Any], list[str]]] = {
    "misspelt field": (
        lambda d: d["extenders"][0].update(nodeCacheCapabel=True),
        [".extenders[0].nodeCacheCapabel: unknown field"],
    ),
    "weight 0": (
        lambda d: d["extenders"][0].update(weight=0),
        [".extenders[0].weight: must be a positive integer when prioritizeVerb is set"],
    ),
    "duration": (
        lambda d: d["extenders"][0].update(httpTimeout="3 seconds"),
        [".extenders[0].httpTimeout: not a duration"],
    ),
    "bool as string": (
        lambda d: d["extenders"][0].update(ignorable="false"),
        [".extenders[0].ignorable: expected true or false"],
    ),
    "not an extended resource": (
        lambda d: d["extenders"][0].update(managedResources=[{"name": "cpu"}]),
        [".extenders[0].managedResources[0].name: 'cpu' is not an extended resource name"],
    ),
    "two binders": (_two_binders, [".extenders: at most one extender may set bindVerb"]),
    "kubeConfig": (
        lambda d: d.update(clientConnection={"kubeConfig": "/x"}),
        [".clientConnection.kubeConfig: unknown field"],
    ),
    "duplicate profile": (
        lambda d: d["profiles"].append({"schedulerName": "compat-scheduler"}),
        [".profiles: duplicate schedulerName in ['compat-scheduler', 'compat-scheduler']"],
    ),
    "old version": (
        lambda d: d.update(apiVersion="kubescheduler.config.k8s.io/v1beta3"),
        ["apiVersion/kind: not a kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration"],
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_checker_refuses_what_kube_scheduler_refuses(case: str) -> None:
    """The control: each change is refused by kube-scheduler's strict decoding or its validation."""
    change, expected = BROKEN[case]
    doc = load(IN_CLUSTER)
    assert problems(doc) == []
    change(doc)
    assert problems(doc) == expected


def test_the_commented_managed_resources_block_is_valid_once_uncommented() -> None:
    """config/kube-scheduler.yaml documents the opt-in mode as a commented block: uncommented, the
    configuration is still valid and the extender is then consulted only for that resource."""
    lines = IN_CLUSTER.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# managedResources:")
    indent = lines[start].index("#")
    block = []
    for line in lines[start:]:
        if not line.startswith(" " * indent + "#"):
            break
        block.append(" " * indent + line[indent + 2 :])
    doc = yaml.safe_load("\n".join(lines[:start] + block + lines[start + len(block) :]))
    assert problems(doc) == []
    (ext,) = doc["extenders"]
    assert ext["managedResources"] == [{"name": "compat-extender.nfd.io/check", "ignoredByScheduler": True}]


def test_in_cluster_config_uses_the_service_account() -> None:
    """In a pod, no kubeconfig: the in-cluster client (the pod's service account)."""
    assert "kubeconfig" not in load(IN_CLUSTER).get("clientConnection", {})


def test_out_of_cluster_config_names_its_kubeconfig_and_is_the_in_cluster_one_otherwise() -> None:
    outside, inside = load(OUT_OF_CLUSTER), load(IN_CLUSTER)
    kubeconfig = outside["clientConnection"]["kubeconfig"]
    assert Path(kubeconfig).is_absolute(), "relative to what? kube-scheduler's working directory"
    # the rest is config/kube-scheduler.yaml, but for the extender's address
    outside.pop("clientConnection")
    (out_ext,), (in_ext,) = outside.pop("extenders"), inside.pop("extenders")
    assert outside == inside
    assert {k: v for k, v in out_ext.items() if k != "urlPrefix"} == {
        k: v for k, v in in_ext.items() if k != "urlPrefix"
    }


def _documented_command(path: Path, program: str) -> list[str]:
    """The ``program ...`` command line in a file's comments (continued with backslashes)."""
    lines = [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith(program + " "))
    text = ""
    for line in lines[start:]:
        text += line.removesuffix("\\")
        if not line.endswith("\\"):
            break
    return shlex.split(text)


def test_out_of_cluster_config_calls_the_extender_its_comment_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `compat-extender serve ...` line in the file, parsed by the real CLI from the repository's
    root: the extender it starts listens where urlPrefix points, reads the cluster the scheduler
    schedules for (a kubeconfig, not the in-cluster account), and prefetches for its profile."""
    monkeypatch.chdir(ROOT)
    command = _documented_command(OUT_OF_CLUSTER, SCRIPT_NAME)
    config = config_from_args(_parser().parse_args(command[1:]))
    doc = load(OUT_OF_CLUSTER)
    (ext,) = doc["extenders"]
    url = urlsplit(ext["urlPrefix"])
    assert (url.hostname, url.port) == (config.listen.host, config.listen.port)
    assert url.hostname == "127.0.0.1"  # loopback: nothing but this host reaches it
    assert url.path.rstrip("/") == config.pathPrefix
    assert url.scheme == ("http" if config.tls.certFile is None else "https")
    assert config.features.source == "kubernetes" and Path(config.features.kubeconfig).is_absolute()
    assert {p["schedulerName"] for p in doc["profiles"]} <= set(config.prefetch.schedulerNames)
    # and the scheduler's own command names this file
    scheduler = _documented_command(OUT_OF_CLUSTER, "kube-scheduler")
    assert scheduler[1:] == ["--config", str(OUT_OF_CLUSTER.relative_to(ROOT))]
