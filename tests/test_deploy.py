"""deploy/: what `kubectl kustomize` renders (no cluster) for the base, each overlay and the
validate-image Job, validated against Kubernetes' schemas (strict) and checked against the extender
itself:

* RBAC: the extender's rights are exactly the resources its code lists and watches (derived from the
  API paths in extender/ and the deployed config, and observed: the deployed config served against
  the API-server stand-in asks for nothing more), read-only; no Role anywhere grants Secrets or
  wildcards; the second scheduler has the built-in scheduler roles plus its own Lease;
* every container is hardened (non-root, read-only root, no privilege escalation, no capabilities,
  RuntimeDefault seccomp, requests and limits); host paths only outside the restricted namespace;
* the probes' paths answer on the app (the deployed config, served), the Service and the scheduler's
  urlPrefix lead to the container's port, the ConfigMap loads with the extender's config loader and
  lands where the image's CMD reads it;
* the scheduler config copy matches config/kube-scheduler.yaml but for leader election;
* registry credentials come as a mounted Secret file, changing nothing else;
* overlays and components compose: none replaces base's config file, a change to it reaches every
  rendering (each overlay, and every component at once), components add config fragments that the
  extender merges over it;
* both Deployments run at the project's own PriorityClass; the NetworkPolicy lets the scheduler and
  Prometheus reach the listener's port and the pods reach DNS, the API server and registries; the
  ServiceMonitor (a CRD the schemas do not know) has the shape the prometheus-operator reads and
  scrapes the Service's port at /metrics;
* the image is named in one place, which `make image IMAGE=...` rewrites (and `make test` does not
  need);
* the extender's memory is the sizing row for 5,000 nodes in docs/deploy.md, whose streamed figures
  are benchmarks/results/memory.json's;
* the validate-image Job's command parses with the real CLI parser.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import kubernetes_validate
import orjson
import pytest
import yaml
from aiohttp.test_utils import TestServer

from extender.cli import main as cli
from extender.config import Config, load_config, to_dict
from extender.sources.kube import NODEFEATURES_PATH, NODES_PATH
from extender.sources.prefetch import PODS_PATH
from extender.sources.wakeup import ANNOTATION
from tests import dockerfile
from tests.dockerfile import ROOT
from tests.kube_apiserver import FakeApiServer
from tests.kube_objects import kubeconfig, node_object, nodefeature_object
from tests.project import SCRIPT_NAME, VERSION, tool
from tests.serving import serving_config
from tests.waiting import until

Doc = dict[str, Any]

DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = {
    "base": DEPLOY / "base",
    "second-scheduler": DEPLOY / "overlays" / "second-scheduler",
    "pull-secrets": DEPLOY / "overlays" / "pull-secrets",
    "validate-image": DEPLOY / "validate-image",
}
#: every optional component (deploy/components/*), each a kustomize Component
COMPONENTS = sorted(p.parent.name for p in (DEPLOY / "components").glob("*/kustomization.yaml"))
#: base with every component at once, rendered from a copy of deploy/ (see copy_deploy)
ALL_COMPONENTS = "all-components"
RENDERS = (*KUSTOMIZATIONS, ALL_COMPONENTS)
WITH_EXTENDER = ("base", "second-scheduler", "pull-secrets", ALL_COMPONENTS)
WITH_SCHEDULER = ("second-scheduler", "pull-secrets")
WITH_NETWORK_POLICY = ("second-scheduler", "pull-secrets", ALL_COMPONENTS)
# The cluster version the manifests target: the second scheduler's minor (kube-scheduler v1.36.x),
# and a version kubernetes-validate ships schemas for.
K8S_MINOR = "1.36"
IMAGE = f"ghcr.io/nfd-compat-extender/compat-extender:{VERSION}"
EXTENDER = ("Deployment", "compat-extender")
SCHEDULER = ("Deployment", "compat-scheduler")
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
#: kinds of CRDs the schemas do not know: their shape is checked by the tests of their own
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}
READ = {"get", "list", "watch"}


def _kustomize(directory: Path) -> str:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize(directory: Path) -> list[Doc]:
    """The objects `kubectl kustomize <directory>` prints."""
    return [d for d in yaml.safe_load_all(_kustomize(directory)) if d]


@functools.cache
def _render(name: str) -> str:
    if name == ALL_COMPONENTS:
        with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
            return _kustomize(copy_deploy(Path(tmp)) / "overlays" / ALL_COMPONENTS)
    return _kustomize(KUSTOMIZATIONS[name])


def render(name: str) -> list[Doc]:
    """The objects `kubectl kustomize deploy/<name>` prints (a fresh copy each time); for
    ALL_COMPONENTS, deploy/base with every component at once."""
    return [d for d in yaml.safe_load_all(_render(name)) if d]


def copy_deploy(tmp_path: Path) -> Path:
    """A copy of deploy/ to change and render, with one kustomization more: base and every
    component at once (overlays/all-components)."""
    copied = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copied)
    every = copied / "overlays" / ALL_COMPONENTS
    every.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base"],
        "components": [f"../../components/{c}" for c in COMPONENTS],
    }
    (every / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return copied


def find(docs: list[Doc], kind: str, name: str | None = None, namespace: str | None = None) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[Doc], kind: str, name: str | None = None, namespace: str | None = None) -> Doc:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the render"
    return found[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]
    if workload["kind"] != "Pod":
        spec = spec["template"]["spec"]
    return spec


def containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(docs: list[Doc], workload: tuple[str, str], name: str | None = None) -> Doc:
    found: list[Doc] = [
        c for c in pod_spec(one(docs, *workload))["containers"] if name is None or c["name"] == name
    ]
    assert len(found) == 1
    return found[0]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def config_map_file(docs: list[Doc], workload: tuple[str, str], mount_dir: str, key: str) -> tuple[str, str]:
    """(the file's text, its path in the container) for ConfigMap volume mounted at ``mount_dir``."""
    spec = pod_spec(one(docs, *workload))
    (mount,) = [
        m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["mountPath"] == mount_dir
    ]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    namespace = one(docs, *workload)["metadata"]["namespace"]
    cm = one(docs, "ConfigMap", volume["configMap"]["name"], namespace)
    assert "subPath" not in mount, "a subPath mount would not follow ConfigMap updates"
    return cm["data"][key], f"{mount_dir.rstrip('/')}/{key}"


def image_cmd() -> list[str]:
    cmd = dockerfile.read()[-1].last("CMD")
    assert cmd is not None
    return cmd.words()


def extender_args(docs: list[Doc]) -> list[str]:
    ext = container(docs, EXTENDER)
    assert "command" not in ext or ext["command"][:1] == [SCRIPT_NAME]
    args: list[str] = ext.get("args") or image_cmd()  # no args: the image's CMD
    return args


def config_paths(args: list[str]) -> list[str]:
    """Every ``--config`` of the extender's command line, in order (later ones merge over earlier)."""
    return [args[i + 1] for i, a in enumerate(args) if a == "--config"]


def extender_config(docs: list[Doc], directory: Path) -> tuple[Config, str, str]:
    """The extender's config as the pod reads it: (every --config file, written out and loaded with
    the extender's loader in order; the first file's text, its path in the container)."""
    paths = config_paths(extender_args(docs))
    assert paths
    written: list[Path] = []
    for i, path in enumerate(paths):
        text, mounted = config_map_file(docs, EXTENDER, str(Path(path).parent), Path(path).name)
        assert mounted == path
        (directory / str(i)).mkdir(exist_ok=True)
        written.append(directory / str(i) / Path(path).name)
        written[-1].write_text(text)
    return load_config(written), written[0].read_text(), paths[0]


def scheduler_config(docs: list[Doc]) -> Doc:
    sched = container(docs, SCHEDULER)
    (path,) = [a.split("=", 1)[1] for a in sched["command"] if a.startswith("--config=")]
    text, mounted = config_map_file(docs, SCHEDULER, str(Path(path).parent), Path(path).name)
    assert mounted == path
    loaded: Doc = yaml.safe_load(text)
    return loaded


def api_resource(path: str) -> tuple[str, str]:
    """An API path -> (group, resource): /api/v1/nodes -> ("", "nodes"),
    /apis/nfd.k8s-sigs.io/v1alpha1/namespaces/x/nodefeatures/y -> ("nfd.k8s-sigs.io", "nodefeatures")."""
    parts = urlsplit(path).path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        assert parts[0] == "apis", path
        group, rest = parts[1], parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    return group, rest[0]


def granted(docs: list[Doc], namespace: str, account: str) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs that the render grants a ServiceAccount through Roles and
    ClusterRoles it defines (bindings to roles it does not define are checked by name elsewhere)."""
    out: dict[tuple[str, str], set[str]] = {}
    for binding in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == namespace
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        role_ns = None if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
        roles = find(docs, ref["kind"], ref["name"], role_ns)
        for role in roles:
            for rule in role["rules"]:
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# -- rendering and schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERS)
def test_renders_objects_valid_for_kubernetes(name: str) -> None:
    docs = render(name)
    assert docs
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        # strict: an unknown or misspelt field is an error, not silently dropped by the API server
        if (doc["apiVersion"], kind) in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # or it would be validated here
                kubernetes_validate.validate(doc, K8S_MINOR, strict=True)
        else:
            kubernetes_validate.validate(doc, K8S_MINOR, strict=True)
        if kind in CLUSTER_SCOPED:
            assert "namespace" not in meta, (kind, meta["name"])
        else:
            assert meta.get("namespace"), f"{kind} {meta['name']} has no namespace"
        key = (kind, meta.get("namespace", ""), meta["name"])
        assert key not in seen, key
        seen.add(key)
    # every namespace used is created here, or is kube-system (the scheduler's authentication Role)
    created = {d["metadata"]["name"] for d in find(docs, "Namespace")}
    used = {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}
    assert used - created <= {"kube-system"}, used - created


def test_schema_validation_is_strict() -> None:
    """The control: a misspelt field and a wrong type in the extender Deployment are rejected."""
    deployment = one(render("base"), *EXTENDER)
    misspelt = copy.deepcopy(deployment)
    pod_spec(misspelt)["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_MINOR, strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "2"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_MINOR, strict=True)


@pytest.mark.parametrize("name", RENDERS)
def test_images_are_the_release(name: str) -> None:
    for doc in render(name):
        if doc["kind"] not in WORKLOADS:
            continue
        for c in containers(pod_spec(doc)):
            image = c["image"]
            if c["name"] == "kube-scheduler":
                assert image.startswith(f"registry.k8s.io/kube-scheduler:v{K8S_MINOR}."), image
            else:
                # the version in pyproject.toml, with the Dockerfile's label
                assert image == IMAGE, image
            assert c["imagePullPolicy"] == "IfNotPresent"


# -- RBAC ----------------------------------------------------------------------------------------------


def _expected_extender_rights(config: Config) -> dict[tuple[str, str], set[str]]:
    paths = [NODEFEATURES_PATH]
    if config.features.watchNodes:
        paths.append(NODES_PATH)
    if config.prefetch.enabled:
        paths.append(PODS_PATH)
    rights = {api_resource(p): set(READ) for p in paths}
    if config.wakeUp.enabled:  # its one write: an annotation on a Node (the admission policy narrows it)
        rights.setdefault(api_resource(NODES_PATH), set()).add("patch")
    return rights


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_extender_rbac_is_exactly_what_it_reads(name: str, tmp_path: Path) -> None:
    docs = render(name)
    config, _, _ = extender_config(docs, tmp_path)
    assert config.features.source == "kubernetes"
    account = pod_spec(one(docs, *EXTENDER))["serviceAccountName"]
    one(docs, "ServiceAccount", account, "compat-extender")
    assert granted(docs, "compat-extender", account) == _expected_extender_rights(config)
    # and through nothing else: every binding of the account is to a role defined here
    for binding in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        if any(s["name"] == account for s in binding.get("subjects", [])):
            ref = binding["roleRef"]
            assert find(docs, ref["kind"], ref["name"]), f"{account} is bound to {ref['name']}"


@pytest.mark.parametrize("name", RENDERS)
def test_no_role_grants_secrets_wildcards_or_escalation(name: str) -> None:
    for role in find(render(name), "ClusterRole") + find(render(name), "Role"):
        for rule in role["rules"]:
            where = f"{role['kind']} {role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule, where
            for field in ("apiGroups", "resources", "verbs"):
                assert not [v for v in rule.get(field, []) if "*" in v], where
            assert not {"secrets", "serviceaccounts/token"} & set(rule["resources"]), where
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(
                rule["verbs"]
            ), where
            if "patch" in rule["verbs"]:  # only the wake-up's, and only under its admission policy
                assert rule == {"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch"]}, where
                assert find(render(name), "ValidatingAdmissionPolicy", WAKE_UP_POLICY), where
    for binding in find(render(name), "ClusterRoleBinding") + find(render(name), "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit", "view"), binding


WAKE_UP_POLICY = "compat-extender-wake-up"


def test_the_wake_up_component_writes_only_under_its_admission_policy(tmp_path: Path) -> None:
    """components/wake-up: the config switch, PATCH on nodes for the extender only, and a policy
    that denies that account every Node change but the wake-up annotation (the CEL itself runs in the
    API server, not here: its terms are checked)."""
    docs = render(ALL_COMPONENTS)
    config, _, _ = extender_config(docs, tmp_path)
    assert config.wakeUp.enabled and config.prefetch.enabled
    account = pod_spec(one(docs, *EXTENDER))["serviceAccountName"]
    policy = one(docs, "ValidatingAdmissionPolicy", WAKE_UP_POLICY)["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["nodes"]}
    ]
    [condition] = policy["matchConditions"]
    assert condition["expression"] == (
        f'request.userInfo.username == "system:serviceaccount:compat-extender:{account}"'
    )
    variables = {v["name"]: v["expression"] for v in policy["variables"]}
    assert variables["annotation"] == f'"{ANNOTATION}"'
    [validation] = policy["validations"]
    for term in (
        "object.spec == oldObject.spec",
        "labels",
        "finalizers",
        "ownerReferences",
        "variables.after.all",
    ):
        assert term in validation["expression"], term
    binding = one(docs, "ValidatingAdmissionPolicyBinding", WAKE_UP_POLICY)["spec"]
    assert binding == {"policyName": WAKE_UP_POLICY, "validationActions": ["Deny"]}
    # without the component: no patch right, no policy, the switch off
    base = render("base")
    assert not find(base, "ValidatingAdmissionPolicy")
    assert "patch" not in granted(base, "compat-extender", account).get(("", "nodes"), set())


@pytest.mark.parametrize("name", WITH_SCHEDULER)
def test_scheduler_rights(name: str) -> None:
    docs = render(name)
    spec = pod_spec(one(docs, *SCHEDULER))
    account, namespace = spec["serviceAccountName"], one(docs, *SCHEDULER)["metadata"]["namespace"]
    refs: set[tuple[str, str, str]] = set()
    for binding in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        if any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == namespace
            for s in binding["subjects"]
        ):
            refs.add(
                (
                    binding["metadata"].get("namespace", ""),
                    binding["roleRef"]["kind"],
                    binding["roleRef"]["name"],
                )
            )
    election = scheduler_config(docs)["leaderElection"]
    lock_ns, lock = election["resourceNamespace"], election["resourceName"]
    (lease_role,) = [r for r in refs if r[1] == "Role" and r[0] == lock_ns]
    assert refs == {
        ("", "ClusterRole", "system:kube-scheduler"),
        ("", "ClusterRole", "system:volume-scheduler"),
        # the secure port's delegated authentication reads kube-system's client CA ConfigMap
        ("kube-system", "Role", "extension-apiserver-authentication-reader"),
        lease_role,
    }
    # the lease Role: its own Lease only (create cannot be limited by name)
    rules = one(docs, "Role", lease_role[2], lock_ns)["rules"]
    rights = {
        (
            tuple(r["apiGroups"]),
            tuple(r["resources"]),
            tuple(r.get("resourceNames", ())),
            tuple(sorted(r["verbs"])),
        )
        for r in rules
    }
    assert rights == {
        (("coordination.k8s.io",), ("leases",), (), ("create",)),
        (("coordination.k8s.io",), ("leases",), (lock,), ("get", "update")),
    }


# -- pods: hardening, probes, ports ------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERS)
def test_every_container_is_hardened(name: str) -> None:
    docs = render(name)
    uid, _ = dockerfile.user_ids(dockerfile.read()[-1])
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), (workload["metadata"]["name"], host)
        writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in containers(spec):
            where = f"{workload['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            effective = {**pod_sc, **sc}  # the container's settings win over the pod's

            assert effective.get("runAsNonRoot") is True, where
            assert isinstance(effective.get("runAsUser"), int) and effective["runAsUser"] > 0, where
            if c["image"] == IMAGE:
                assert effective["runAsUser"] == uid, f"{where}: not the image's USER"
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("privileged") in (None, False), where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), f"{where}: {kind}"
            for mount in c.get("volumeMounts", []):
                # with a read-only root, only emptyDirs are written; everything else is read-only
                assert mount["name"] in writable or mount.get("readOnly") is True, f"{where}: {mount}"


@pytest.mark.parametrize("name", RENDERS)
def test_host_paths_only_where_the_namespace_allows_them(name: str) -> None:
    docs = render(name)
    levels = {
        d["metadata"]["name"]: d["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
        for d in find(docs, "Namespace")
    }
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        namespace = workload["metadata"]["namespace"]
        uses_host = any("hostPath" in v for v in pod_spec(workload).get("volumes", []))
        # baseline and restricted forbid host paths; the extender's namespace is restricted
        assert levels[namespace] == ("privileged" if uses_host else "restricted"), (namespace, levels)


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_extender_pods_spread_and_stay_available(name: str) -> None:
    docs = render(name)
    deployment = one(docs, *EXTENDER)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    spread = [
        t
        for t in pod_spec(deployment).get("topologySpreadConstraints", [])
        if t["topologyKey"] == "kubernetes.io/hostname" and t["whenUnsatisfiable"] == "DoNotSchedule"
    ]
    assert spread and matches(spread[0]["labelSelector"]["matchLabels"], labels)
    pdb = one(docs, "PodDisruptionBudget", "compat-extender")
    assert matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert 0 < pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]  # drains can proceed
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_config_map_is_the_deploy_config(name: str, tmp_path: Path) -> None:
    docs = render(name)
    config, _, path = extender_config(docs, tmp_path)
    assert path == image_cmd()[image_cmd().index("--config") + 1]  # where the image's CMD reads it
    assert config.listen.host == "0.0.0.0"
    assert config.features.source == "kubernetes" and config.features.kubeconfig == ""  # in-cluster
    assert config.specs.source == "registry"
    assert config.prefetch.enabled is True
    assert config.failurePolicy == "Fail"
    # the debug endpoints are not on the Service's port: off, or on a loopback listener of their own
    assert not config.debug.enabled or (config.debug.port != 0 and config.debug.host in ("127.0.0.1", "::1"))
    if name in WITH_SCHEDULER:
        names = {p["schedulerName"] for p in scheduler_config(docs)["profiles"]}
        assert names <= set(config.prefetch.schedulerNames), "prefetch must follow the scheduler's pods"


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_service_and_probes_lead_to_the_listener(name: str, tmp_path: Path) -> None:
    docs = render(name)
    config, _, _ = extender_config(docs, tmp_path)
    ext = container(docs, EXTENDER)
    ports = {p["name"]: p["containerPort"] for p in ext["ports"]}
    assert config.debug.port not in ports.values(), "the debug port is loopback-only"
    service = one(docs, "Service", "compat-extender", "compat-extender")
    (port,) = service["spec"]["ports"]
    assert port["port"] == config.listen.port
    assert ports[port["targetPort"]] == config.listen.port
    # the Service selects the extender's pods and nothing else rendered
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        selected = matches(service["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
        assert selected == (workload["metadata"]["name"] == EXTENDER[1]), workload["metadata"]["name"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert ports[ext[probe]["httpGet"]["port"]] == config.listen.port, probe
    assert ext["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ext["readinessProbe"]["httpGet"]["path"] == "/readyz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _observed(requests: list[str]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for path_qs in requests:
        verb = "watch" if parse_qs(urlsplit(path_qs).query).get("watch") in (["true"], ["1"]) else "list"
        out.setdefault(api_resource(path_qs), set()).add(verb)
    return out


async def test_the_deployed_config_served(tmp_path: Path) -> None:
    """base's extender.yaml, as the pod would run it (only the API server, listen addresses and
    debug port changed to loopback ones): the probes' paths answer on the probed port, /debug/* only
    on the loopback debug listener, and what it asks the API server for is exactly what RBAC grants."""
    docs = render("base")
    _, text, _ = extender_config(docs, tmp_path)
    ext = container(docs, EXTENDER)
    rights = granted(docs, "compat-extender", pod_spec(one(docs, *EXTENDER))["serviceAccountName"])

    server = FakeApiServer()
    await server.put(NODES_PATH, node_object("n0"))
    await server.put(NODEFEATURES_PATH, nodefeature_object("n0", "n0", ["vfio-pci"]))
    async with TestServer(server.app) as api:
        (tmp_path / "deployed.yaml").write_text(text)
        overrides = {
            "listen.host": "127.0.0.1",
            "listen.port": 0,
            "debug.port": _free_port(),
            "features.kubeconfig": str(
                kubeconfig(tmp_path / "kubeconfig", str(api.make_url("")).rstrip("/"))
            ),
        }
        config = load_config(tmp_path / "deployed.yaml", overrides)
        deployed = load_config(tmp_path / "deployed.yaml")
        changed = {k for k, v in to_dict(config).items() if v != to_dict(deployed)[k]}
        assert changed <= {"listen", "debug", "features"}
        async with serving_config(config) as (main, debug):
            async with aiohttp.ClientSession() as session:

                async def status(base: str, path: str) -> int:
                    async with session.get(base + path) as resp:
                        return resp.status

                async def ready() -> bool:
                    return await status(main, ext["readinessProbe"]["httpGet"]["path"]) == 200

                await until(ready, "the readiness probe answers 200")
                for probe in ("startupProbe", "livenessProbe"):
                    assert await status(main, ext[probe]["httpGet"]["path"]) == 200, probe
                assert await status(main, "/metrics") == 200
                assert await status(main, "/debug/sources") == 404
                assert await status(debug, "/debug/sources") == 200
                assert urlsplit(debug).hostname == config.debug.host == "127.0.0.1"

            # every granted resource gets listed and watched (prefetch's pods too), nothing else is asked for
            def all_listed_and_watched() -> bool:
                observed = _observed(server.requests)
                assert set(observed) <= set(rights), server.requests
                return set(observed) == set(rights) and all(v == {"list", "watch"} for v in observed.values())

            await until(
                all_listed_and_watched,
                lambda: f"listed/watched {_observed(server.requests)}, granted {rights}",
            )
            for resource, verbs in _observed(server.requests).items():
                assert verbs <= rights[resource], resource


# -- the second scheduler ----------------------------------------------------------------------------


def test_scheduler_config_is_config_kube_scheduler_yaml_with_leader_election() -> None:
    reference = yaml.safe_load((ROOT / "config" / "kube-scheduler.yaml").read_text())
    copy_ = yaml.safe_load((KUSTOMIZATIONS["second-scheduler"] / "kube-scheduler.yaml").read_text())
    assert scheduler_config(render("second-scheduler")) == copy_
    reference.pop("leaderElection")
    election = copy_.pop("leaderElection")
    assert copy_ == reference
    assert election["leaderElect"] is True


@pytest.mark.parametrize("name", WITH_SCHEDULER)
def test_scheduler_calls_the_extender_service(name: str, tmp_path: Path) -> None:
    docs = render(name)
    config, _, _ = extender_config(docs, tmp_path)
    service = one(docs, "Service", "compat-extender")
    (port,) = service["spec"]["ports"]
    sched = scheduler_config(docs)
    assert sched["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert sched["kind"] == "KubeSchedulerConfiguration"
    (extender,) = sched["extenders"]
    url = urlsplit(extender["urlPrefix"])
    assert url.scheme == "http"
    assert url.hostname in {
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc",
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local",
    }
    assert url.port == port["port"]
    assert url.path.rstrip("/") == config.pathPrefix
    assert (extender["filterVerb"], extender["prioritizeVerb"]) == (
        "filter",
        "prioritize",
    )  # the app's routes
    assert extender["nodeCacheCapable"] is True


@pytest.mark.parametrize("name", WITH_SCHEDULER)
def test_scheduler_leader_election_and_replicas(name: str) -> None:
    docs = render(name)
    deployment = one(docs, *SCHEDULER)
    election = scheduler_config(docs)["leaderElection"]
    if election["leaderElect"]:
        assert deployment["spec"]["replicas"] >= 2
        assert election.get("resourceLock", "leases") == "leases"
        # not the default scheduler's lock: sharing it would keep one of the two schedulers idle
        assert (election["resourceNamespace"], election["resourceName"]) != ("kube-system", "kube-scheduler")
        assert election["resourceNamespace"] == deployment["metadata"]["namespace"]
    else:  # one at a time, also during a rollout
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    sched = container(docs, SCHEDULER)
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = sched[probe]["httpGet"]
        assert (get["path"], get["scheme"]) == (path, "HTTPS")
        assert {p["name"]: p["containerPort"] for p in sched["ports"]}[get["port"]] == 10259
    (cert_dir,) = [a.split("=", 1)[1] for a in sched["command"] if a.startswith("--cert-dir=")]
    tmp = [m["mountPath"] for m in sched["volumeMounts"] if m["name"] == "tmp"]
    assert tmp and cert_dir.startswith(tmp[0] + "/"), "self-signed serving certs need a writable dir"


# -- registry credentials ----------------------------------------------------------------------------


def test_pull_secrets_mount_credentials_and_change_nothing_else(tmp_path: Path) -> None:
    plain, with_creds = render("second-scheduler"), render("pull-secrets")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before, _, _ = extender_config(plain, tmp_path / "a")
    after, _, _ = extender_config(with_creds, tmp_path / "b")
    assert before.registry.dockerConfig is None
    assert after.registry.dockerConfig is not None
    differ = {k for k, v in to_dict(after)["registry"].items() if v != to_dict(before)["registry"][k]}
    assert differ == {"dockerConfig"}
    assert {k: v for k, v in to_dict(after).items() if k != "registry"} == {
        k: v for k, v in to_dict(before).items() if k != "registry"
    }
    # the file is the Secret's .dockerconfigjson, mounted (not subPath: rotations reach it)
    spec = pod_spec(one(with_creds, *EXTENDER))
    (mount,) = [
        m
        for m in container(with_creds, EXTENDER)["volumeMounts"]
        if m["mountPath"] == str(after.registry.dockerConfig.parent)
    ]
    assert mount["readOnly"] is True and "subPath" not in mount
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": after.registry.dockerConfig.name}
    ]
    assert volume["secret"].get("optional") is False
    # still no Secret rights, and no Secret shipped
    assert not find(with_creds, "Secret")
    for kind in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "ServiceAccount"):
        assert find(with_creds, kind) == find(plain, kind), kind


# -- composition: overlays and components change only what they name --------------------------------


def test_every_overlay_and_component_is_rendered_here() -> None:
    overlays = {p.parent.name for p in (DEPLOY / "overlays").glob("*/kustomization.yaml")}
    assert overlays <= set(KUSTOMIZATIONS), overlays - set(KUSTOMIZATIONS)
    assert COMPONENTS, "deploy/components is empty"
    for name in COMPONENTS:
        kustomization = yaml.safe_load((DEPLOY / "components" / name / "kustomization.yaml").read_text())
        assert kustomization["kind"] == "Component", name


def _config_maps_named(docs: list[Doc], name: str) -> list[Doc]:
    return [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith(f"{name}-")]


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_no_overlay_replaces_the_base_config(name: str, tmp_path: Path) -> None:
    """base/extender.yaml reaches the pod byte for byte; whatever an overlay adds is a fragment of
    its own, read by a later --config, and the command line is otherwise the image's CMD."""
    docs = render(name)
    args = extender_args(docs)
    cmd = image_cmd()
    assert args[: len(cmd)] == cmd
    rest = args[len(cmd) :]
    assert rest[::2] == ["--config"] * (len(rest) // 2) and len(rest) % 2 == 0, rest
    paths = config_paths(args)
    assert len(set(paths)) == len(paths)
    base_text = (DEPLOY / "base" / "extender.yaml").read_text()
    text, _ = config_map_file(docs, EXTENDER, str(Path(paths[0]).parent), Path(paths[0]).name)
    assert text == base_text
    # and every fragment is valid over base on its own
    base = tmp_path / "extender.yaml"
    base.write_text(base_text)
    for i, path in enumerate(paths[1:]):
        fragment_text, _ = config_map_file(docs, EXTENDER, str(Path(path).parent), Path(path).name)
        fragment = tmp_path / f"fragment-{i}.yaml"
        fragment.write_text(fragment_text)
        load_config([base, fragment])


def _kustomizations_with_extender(deploy: Path) -> dict[str, Path]:
    return {
        "base": deploy / "base",
        **{p.parent.name: p.parent for p in sorted((deploy / "overlays").glob("*/kustomization.yaml"))},
    }


def test_a_change_to_the_base_config_reaches_every_overlay(tmp_path: Path) -> None:
    """Edit a copy of deploy/base/extender.yaml (registry.allow, the lookup timeout, prefetch's
    concurrency) and render every overlay, and base with every component, from that copy: the edit
    is in each rendering's effective config, and each overlay's own change is still there."""
    deploy = copy_deploy(tmp_path)
    extender_yaml = deploy / "base" / "extender.yaml"
    tree = yaml.safe_load(extender_yaml.read_text())
    tree["registry"]["allow"] = ["composition-check.example", "registry.example.com:5000"]
    tree["registry"]["lookupSeconds"] = 7
    tree["prefetch"]["concurrency"] = 3
    extender_yaml.write_text(yaml.safe_dump(tree))

    originals = {
        name: extender_config(render(name), _dir(tmp_path, "orig", name))[0] for name in WITH_EXTENDER
    }
    renderings = _kustomizations_with_extender(deploy)
    assert set(renderings) == set(WITH_EXTENDER), "an overlay without the extender? add it to WITH_EXTENDER"
    for name, directory in renderings.items():
        config, text, _ = extender_config(kustomize(directory), _dir(tmp_path, "edited", name))
        assert text == extender_yaml.read_text(), name
        assert config.registry.allow == ("composition-check.example", "registry.example.com:5000"), name
        assert config.registry.lookupSeconds == 7, name
        assert config.prefetch.concurrency == 3, name
        # what the overlay itself sets is unchanged by the edit
        before = originals[name]
        expected = dataclasses.replace(
            before,
            registry=dataclasses.replace(before.registry, allow=config.registry.allow, lookupSeconds=7),
            prefetch=dataclasses.replace(before.prefetch, concurrency=3),
        )
        assert config == expected, name


def _dir(tmp_path: Path, *parts: str) -> Path:
    directory = tmp_path.joinpath(*parts)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_pull_secrets_fragment_composes_with_base_edits(tmp_path: Path) -> None:
    """The control for the test above: the pull-secrets overlay's own key survives an edit of the
    same section of base (registry), so the fragment is merged, not a replacement of either."""
    deploy = copy_deploy(tmp_path)
    extender_yaml = deploy / "base" / "extender.yaml"
    tree = yaml.safe_load(extender_yaml.read_text())
    tree["registry"]["plainHttp"] = ["lab.example:5000"]
    extender_yaml.write_text(yaml.safe_dump(tree))
    config, _, _ = extender_config(kustomize(deploy / "overlays" / "pull-secrets"), tmp_path)
    assert config.registry.plainHttp == ("lab.example:5000",)
    assert config.registry.dockerConfig == Path("/etc/compat-extender-registry/config.json")


# -- priority ----------------------------------------------------------------------------------------

#: the highest value a PriorityClass may have outside the built-in system- classes
HIGHEST_USER_PRIORITY = 1_000_000_000


@pytest.mark.parametrize("name", WITH_EXTENDER)
def test_extender_and_scheduler_run_at_the_projects_priority(name: str) -> None:
    docs = render(name)
    on_path = [one(docs, *EXTENDER)] + ([one(docs, *SCHEDULER)] if name in WITH_SCHEDULER else [])
    classes = {pod_spec(d).get("priorityClassName") for d in on_path}
    assert len(classes) == 1 and None not in classes, classes
    (class_name,) = classes
    assert isinstance(class_name, str) and not class_name.startswith("system-")  # reserved
    pc = one(docs, "PriorityClass", class_name)
    # high: above every workload at the default 0 and any ordinary class; a user class may not
    # exceed one billion (above are system-cluster-critical and system-node-critical)
    assert HIGHEST_USER_PRIORITY // 2 <= pc["value"] <= HIGHEST_USER_PRIORITY
    assert pc.get("globalDefault", False) is False  # it must not become every pod's priority
    assert pc.get("preemptionPolicy", "PreemptLowerPriority") == "PreemptLowerPriority"
    # every priorityClassName in the render is defined in it
    for workload in (d for d in docs if d["kind"] in WORKLOADS):
        used = pod_spec(workload).get("priorityClassName")
        assert used is None or find(docs, "PriorityClass", used), used


# -- network policy ----------------------------------------------------------------------------------


def _peer_admits(peer: Doc, pod_labels: dict[str, str], pod_namespace: Doc, policy_namespace: str) -> bool:
    """Whether a NetworkPolicyPeer (podSelector/namespaceSelector, matchLabels only) admits a pod."""
    assert set(peer) <= {"podSelector", "namespaceSelector"}, peer
    pods = peer.get("podSelector")
    namespaces = peer.get("namespaceSelector")
    for selector in (pods, namespaces):
        assert selector is None or set(selector) == {"matchLabels"}, selector
    if namespaces is None:
        in_namespace = pod_namespace["metadata"]["name"] == policy_namespace
    else:
        in_namespace = matches(namespaces["matchLabels"], pod_namespace["metadata"].get("labels", {}))
    return in_namespace and (pods is None or matches(pods["matchLabels"], pod_labels))


def _namespace_object(name: str, labels: dict[str, str] | None = None) -> Doc:
    """A Namespace as the API server has it: with the kubernetes.io/metadata.name label it sets."""
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}}


def _port_numbers(rule: Doc, container_ports: dict[str, int]) -> set[tuple[int, str]]:
    out = set()
    for port in rule["ports"]:
        number = container_ports[port["port"]] if isinstance(port["port"], str) else port["port"]
        out.add((number, port.get("protocol", "TCP")))
    return out


def test_base_has_no_network_policy() -> None:
    """base may be registered with a scheduler of the cluster's own (on the control plane's host
    network, which no pod selector matches): a policy there would cut that scheduler off."""
    assert not find(render("base"), "NetworkPolicy")


@pytest.mark.parametrize("name", WITH_NETWORK_POLICY)
def test_network_policy_admits_the_scheduler_and_prometheus_only_to_the_listener(
    name: str, tmp_path: Path
) -> None:
    docs = render(name)
    config, _, _ = extender_config(docs, tmp_path)
    deployment = one(docs, *EXTENDER)
    namespace = deployment["metadata"]["namespace"]
    policies = [
        p
        for p in find(docs, "NetworkPolicy", namespace=namespace)
        if matches(
            p["spec"]["podSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
        )
    ]
    (policy,) = policies
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    ext_ports = {p["name"]: p["containerPort"] for p in container(docs, EXTENDER)["ports"]}
    # every ingress rule opens the listener's port and nothing else (the debug port is loopback)
    for rule in spec["ingress"]:
        assert _port_numbers(rule, ext_ports) == {(config.listen.port, "TCP")}, rule
    # the scheduler's pods (when rendered here) are admitted
    ns = _namespace_object(namespace)
    if name in WITH_SCHEDULER:
        sched = one(docs, *SCHEDULER)
        labels = sched["spec"]["template"]["metadata"]["labels"]
        assert any(_peer_admits(peer, labels, ns, namespace) for r in spec["ingress"] for peer in r["from"])
    # Prometheus (monitoring/prometheus) is; an arbitrary pod in another namespace, or this one, is not
    prometheus = ({"app.kubernetes.io/name": "prometheus"}, _namespace_object("monitoring"))
    stranger = ({"app": "web"}, _namespace_object("default"))
    neighbour = ({"app": "web"}, ns)
    admitted = [
        any(_peer_admits(peer, labels, pod_ns, namespace) for r in spec["ingress"] for peer in r["from"])
        for labels, pod_ns in (prometheus, stranger, neighbour)
    ]
    assert admitted == [True, False, False]
    # egress: DNS to the cluster's DNS pods, and 443/6443 (API server, HTTPS registries) to any address
    dns = [r for r in spec["egress"] if {p["port"] for p in r["ports"]} == {53}]
    assert len(dns) == 1 and _port_numbers(dns[0], {}) == {(53, "UDP"), (53, "TCP")}
    kube_dns = ({"k8s-app": "kube-dns"}, _namespace_object("kube-system"))
    assert any(_peer_admits(peer, *kube_dns, namespace) for peer in dns[0]["to"])
    anywhere = [r for r in spec["egress"] if r is not dns[0]]
    assert len(anywhere) == 1
    assert {p["ipBlock"]["cidr"] for p in anywhere[0]["to"]} == {"0.0.0.0/0", "::/0"}
    assert not any(p["ipBlock"].get("except") for p in anywhere[0]["to"])
    assert _port_numbers(anywhere[0], {}) == {(443, "TCP"), (6443, "TCP")}


# -- monitoring --------------------------------------------------------------------------------------

# The fields of the prometheus-operator's ServiceMonitor (monitoring.coreos.com/v1) that these
# manifests may use; the schemas do not know the CRD, so a misspelt one would otherwise pass.
SERVICE_MONITOR_SPEC = {
    "selector",
    "namespaceSelector",
    "endpoints",
    "jobLabel",
    "targetLabels",
    "sampleLimit",
}
SERVICE_MONITOR_ENDPOINT = {
    "port",
    "path",
    "scheme",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "tlsConfig",
    "relabelings",
    "metricRelabelings",
}
DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


def test_service_monitor_scrapes_the_metrics_port(tmp_path: Path) -> None:
    docs = render(ALL_COMPONENTS)
    config, _, _ = extender_config(docs, tmp_path)
    (monitor,) = find(docs, "ServiceMonitor")
    assert (monitor["apiVersion"], monitor["kind"]) in CUSTOM_KINDS
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC and {"selector", "endpoints"} <= set(spec), spec
    service = one(docs, "Service", "compat-extender")
    # it selects this Service (and no other Service rendered), in the Service's namespace
    assert set(spec["selector"]) == {"matchLabels"}
    selected = [
        s for s in find(docs, "Service") if matches(spec["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert selected == [service]
    assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT, endpoint
    (port,) = service["spec"]["ports"]
    assert endpoint["port"] == port["name"] and port["port"] == config.listen.port
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == ("http" if config.tls.certFile is None else "https")
    for key in ("interval", "scrapeTimeout"):
        assert DURATION.match(endpoint[key]), endpoint[key]
    # nowhere else: monitoring needs the CRD, so it is optional
    for name in KUSTOMIZATIONS:
        assert not find(render(name), "ServiceMonitor"), name


# -- sizing ------------------------------------------------------------------------------------------

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
MEMORY_RESULTS = ROOT / "benchmarks" / "results" / "memory.json"
MIB = {"Mi": 1, "Gi": 1024}


def _quantity_mib(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert m, quantity
    number, unit = m.groups()
    return int(number) * MIB[unit]


def sizing_table() -> dict[str, list[str]]:
    """The sizing table of docs/deploy.md: first cell (nodes) -> the row's cells."""
    text = DEPLOY_DOC.read_text()
    start = text.index("\n## Sizing\n") + 1
    rows: dict[str, list[str]] = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def _mib(cell: str) -> float:
    """The first figure in a cell: "146 MiB" -> 146, "≈ 6.9 GiB (estimate)" -> 7065.6."""
    m = re.search(r"([\d,.]+) (MiB|GiB)", cell)
    assert m, cell
    number, unit = m.groups()
    return float(number.replace(",", "")) * (1024 if unit == "GiB" else 1)


def test_the_sizing_table_is_the_measured_memory_and_the_deployment_follows_it() -> None:
    """The streamed column is benchmarks/results/memory.json; each row's memory is 1.3x the
    after-list figure rounded up to 128 MiB; the Deployment ships the 5,000-node row."""
    rows = sizing_table()
    measured = {r["nodes"]: r["extra"] for r in orjson.loads(MEMORY_RESULTS.read_bytes())["rows"]}
    for nodes in (1000, 5000, 50000):
        cells = rows[f"{nodes:,}"]
        assert round(_mib(cells[1])) == round(measured[nodes]["rss_mib"]), cells
        memory = _quantity_mib(cells[3].split()[0].strip("`"))
        assert memory == math.ceil(1.3 * _mib(cells[2]) / 128) * 128, cells
    resources = container(render("base"), EXTENDER)["resources"]
    shipped = rows["5,000"][3].split()[0].strip("`")
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == shipped
    assert "756 MiB" in rows["5,000"][2]


# -- the image ---------------------------------------------------------------------------------------

IMAGE_COMPONENT = DEPLOY / "image"


def _makefile_rules() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z$][\w$()./-]*)\s*:(?!=)\s*(.*)$", line)
        if m and not line.startswith("\t"):
            rules.setdefault(m[1], []).extend(m[2].split())
    return rules


def test_the_image_is_named_in_one_place_that_make_image_sets() -> None:
    component = yaml.safe_load((IMAGE_COMPONENT / "kustomization.yaml").read_text())
    (entry,) = component["images"]
    assert f"{entry['newName']}:{entry['newTag']}" == IMAGE
    # nothing else in deploy/ names an image for the extender's placeholder
    for path in DEPLOY.rglob("kustomization.yaml"):
        doc = yaml.safe_load(path.read_text())
        if path.parent != IMAGE_COMPONENT:
            assert "images" not in doc, path
    # the Makefile's default is the same image, and its target rewrites that file
    makefile = (ROOT / "Makefile").read_text()
    (default,) = re.findall(r"^IMAGE \?= (\S+)$", makefile, re.MULTILINE)
    assert default == IMAGE
    assert re.search(r"^IMAGE_KUSTOMIZATION := deploy/image/kustomization.yaml$", makefile, re.MULTILINE)
    # and `make test` does not need it (nor an engine)
    rules = _makefile_rules()
    seen, todo = set(), ["test"]
    while todo:
        target = todo.pop()
        if target not in seen:
            seen.add(target)
            todo.extend(rules.get(target, []))
    assert "image" in rules and "image" not in seen, seen


def test_make_image_sets_the_image_in_every_rendering(tmp_path: Path) -> None:
    """On a copy of deploy/, with CONTAINER_TOOL empty (no build): every extender container in every
    rendering runs the new image; an image without a tag is refused and changes nothing."""
    deploy = copy_deploy(tmp_path)
    make = shutil.which("make")
    assert make, "make is needed to run `make image`"

    def make_image(image: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                make,
                "-s",
                "-C",
                str(tmp_path),
                "-f",
                str(ROOT / "Makefile"),
                "image",
                f"IMAGE={image}",
                "CONTAINER_TOOL=",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )

    new = "registry.example.com:5000/team/compat-extender:1.10"
    done = make_image(new)
    assert done.returncode == 0, done.stderr
    renderings = {**_kustomizations_with_extender(deploy), "validate-image": deploy / "validate-image"}
    for name, directory in renderings.items():
        images = [
            c["image"]
            for d in kustomize(directory)
            if d["kind"] in WORKLOADS
            for c in containers(pod_spec(d))
            if c["name"] != "kube-scheduler"
        ]
        assert images and set(images) == {new}, (name, images)
    before = (deploy / "image" / "kustomization.yaml").read_text()
    for bad in ("registry.example.com:5000/team/compat-extender", "compat-extender@sha256:00", "x:1;rm"):
        refused = make_image(bad)
        assert refused.returncode != 0 and "make image:" in refused.stderr, (bad, refused.stderr)
        assert (deploy / "image" / "kustomization.yaml").read_text() == before


# -- validate-image ----------------------------------------------------------------------------------

HOST_PATHS = {"/boot", "/etc/os-release", "/sys", "/usr/lib", "/lib", "/proc"}


def _job() -> Doc:
    return one(render("validate-image"), "Job", "validate-image")


def test_validate_image_job() -> None:
    job = _job()
    spec = pod_spec(job)
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False  # no API access needed
    assert spec["nodeName"], "the node to validate"
    (c,) = spec["containers"]
    assert c["image"] == IMAGE
    command = c["command"]
    assert command[0] == SCRIPT_NAME and command[1] == "validate-node"
    prefix = command[command.index("--host-prefix") + 1]
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert set(volumes.values()) == HOST_PATHS
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for name, host_path in volumes.items():
        # where validate-node looks for the host's path: --host-prefix + the path
        assert mounts[name]["mountPath"] == prefix + host_path.lstrip("/"), host_path
        assert mounts[name]["readOnly"] is True
    # system.name.nodename comes from NODE_NAME (in a pod the hostname is the pod's name)
    env = {e["name"]: e for e in c.get("env", [])}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("compat-extender's parser has no subcommands")


def test_validate_image_job_command_parses_with_the_cli() -> None:
    """Against the real parser (extender.cli), so the Job and the CLI cannot drift apart."""
    (c,) = pod_spec(_job())["containers"]
    parser = cli._parser()
    names = sorted(_subcommands(parser))
    assert "validate-node" in names, (
        "compat-extender has no `validate-node` subcommand yet; the Job in deploy/validate-image runs "
        f"{c['command']}; it has {names}"
    )
    args = parser.parse_args(c["command"][1:])
    assert args.command == "validate-node"
    assert args.image == c["command"][c["command"].index("--image") + 1] != "IMAGE"
    assert args.host_prefix == "/host-"
