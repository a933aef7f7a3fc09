"""``compat-extender validate-node``: can this host (or a NodeFeature file) run an image?

    compat-extender validate-node (--image REF | --spec FILE) [--features FILE [--node NAME]]
                                  [--host-prefix PREFIX] [--tags a,b] [--json]
    compat-extender host-features [--host-prefix PREFIX] [--node-name NAME] [--namespace NS]

``validate-node`` is NFD's ``nfd compat validate-node``: it takes the image's compatibility spec (from
its registry, through the referrers API, or from a file), discovers this host's features the way
nfd-worker does (:mod:`extender.sources.host`; in a pod, the host's directories mounted at
``/host-sys``, ``/host-proc``, ... as in the validate-image Job) or reads them from a NodeFeature file,
and evaluates every selected compatibility set with the extender's own matcher. It prints a table per
set and rule (default) or JSON with, per set, the expressions that did not match and what was found.
For a multi-arch image the host is judged by the variant its platform pulls (:func:`host_platform`
tells the platform; docs/multi-arch.md), and the output says which one ("judged by ...").

Exit codes: 0 compatible (at least one selected set matches, as the filter decides; an image
without a spec imposes nothing), 1 incompatible, 2 error: the spec lookup failed, the input is
unreadable or not what it should be (a ``--features`` file that is neither NodeFeature objects nor a
features map), or an expression could not be evaluated (NFD's client stops with an error there too;
the message names the set and rule).

``host-features`` prints what discovery found as a NodeFeature object (YAML-compatible JSON), for
``--features``, for ``/debug/whatif``, or to compare with what nfd-worker publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from extender.cli.registry import registry_config
from extender.errors import CommandError, ExtenderError
from extender.features.nodefeature import (
    API_VERSION,
    NODE_NAME_LABEL,
    NodeFeatures,
    features_from_dict,
    node_features_from_objects,
)
from extender.features.platform import platform_from_features
from extender.images import parse_reference
from extender.match.explain import explain
from extender.match.report import fit, render
from extender.platforms import Platform, key_of, platform_key
from extender.sources.files import objects_in
from extender.sources.from_config import registry_client, registry_specs
from extender.sources.host.discover import HostPaths, discover
from extender.spec.model import Spec
from extender.spec.parse import parse_spec
from extender.spec.variants import ImageSpec
from extender.yamlfile import load_file

VALIDATE_DESCRIPTION = """\
Check whether this host, or the node a NodeFeature file describes, can run an image: what NFD's
`nfd compat validate-node` does. The image's compatibility spec comes from its registry (--image)
or from a file (--spec); the features are discovered on this host the way nfd-worker finds them
(in the validate-image Job, from the host's directories mounted at /host-sys, /host-proc, ...) or
read from --features. Every selected compatibility set is evaluated with the extender's own
matcher, and a table per set and rule is printed (or JSON with, per set, what did not match and
what was found). Registry options as for attach: --config's registry section, --docker-config,
--plain-http.

For a multi-arch image (an index), the host is judged by the variant it would pull: its platform's
manifest's own artifact, else the index's (docs/multi-arch.md). The platform is told from the
features, as the extender tells a node's from its NodeFeature (x86-64 or arm64 cpu.cpuid flags,
else the cpu.model vendor); failing that, on the live host, Python's platform.machine(), else
registry.platform. --platform overrides it. The output says which variant and artifact were used
("judged by ..."); an index without a manifest for the platform is reported as incompatible.
"""

VALIDATE_EPILOG = """\
examples:
  compat-extender validate-node --image registry.example.com/hpc/solver:2024.2
  compat-extender validate-node --image registry.example.com/hpc/solver:2024.2 --host-prefix /host-
  compat-extender validate-node --image registry.example.com/hpc/solver:2024.2 --platform linux/arm64 \
      --features grace-01.yaml
  compat-extender validate-node --spec examples/specs/dpdk-app.yaml \\
      --features examples/nodefeatures/dpdk-e810-01.yaml
  compat-extender validate-node --spec examples/specs/cuda-train.yaml --features node.json --tags h100 --json

exit codes:
  0  compatible: a selected set matches (as the filter decides), or the image has no spec
  1  incompatible (also: a multi-arch image without a manifest for this platform)
  2  bad usage, or an error: the spec lookup failed or the spec is invalid, an input cannot be read
     or is not what it should be (a --features file that is neither NodeFeature objects nor a
     features map, or that has a key twice), or an expression could not be evaluated (NFD's client
     stops there too; the message names the set and rule)
"""

HOST_FEATURES_DESCRIPTION = """\
Discover this host's features the way nfd-worker does and print them as a NodeFeature object
(YAML-compatible JSON): to use with validate-node --features, in a /debug/whatif request, or to
compare with what nfd-worker publishes. What could not be read is reported on stderr.
"""

HOST_FEATURES_EPILOG = """\
examples:
  compat-extender host-features
  compat-extender host-features --host-prefix /host- --node-name gpu-h100-01 > node.json

exit codes:
  0  printed (parts that could not be discovered are reported on stderr, and left out)
  2  bad usage
"""


def add_parsers(sub: Any) -> None:
    v = sub.add_parser(
        "validate-node",
        help="check this host (or a NodeFeature file) against an image's compatibility spec",
        description=VALIDATE_DESCRIPTION,
        epilog=VALIDATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = v.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", help="image whose attached compatibility spec is checked")
    which.add_argument("--spec", type=Path, help="a compatibility spec file (YAML) instead of an image")
    v.add_argument(
        "--features",
        type=Path,
        help="evaluate this file instead of the live host: NodeFeature objects (YAML/JSON, a List too) "
        "or the bare features map that `nfd export features` prints",
    )
    v.add_argument("--node", help="the node to take from --features when it holds several")
    _host_prefix(v)
    v.add_argument(
        "--tags",
        action="append",
        default=[],
        help="only sets with these tags (comma-separated or repeated; NFD's --tags)",
    )
    v.add_argument("--json", "--output-json", dest="json", action="store_true", help="JSON output")
    v.add_argument("--config", type=Path, help="extender config file (its registry section is used)")
    v.add_argument("--docker-config", type=Path, help="docker config.json with registry credentials")
    v.add_argument("--plain-http", action="store_true", help="talk http:// to the image's registry")
    v.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="judge by this platform's variant of a multi-arch image [told from the features]",
    )

    h = sub.add_parser(
        "host-features",
        help="discover this host's features and print them as a NodeFeature",
        description=HOST_FEATURES_DESCRIPTION,
        epilog=HOST_FEATURES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _host_prefix(h)
    h.add_argument("--node-name", help="metadata and node-name label (default: the host's nodename)")
    h.add_argument("--namespace", default="node-feature-discovery", help="metadata.namespace")


def _host_prefix(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host-prefix",
        help="where the host's /proc, /sys, /etc, /boot, /lib and /usr are: '/' (on the host) or "
        "'/host-' (in the validate-image Job: /host-sys, ...). Default: '/host-' when /host-sys and "
        "/host-proc exist, else '/'",
    )


def _host_paths(prefix: str | None) -> HostPaths:
    return HostPaths.detect() if prefix is None else HostPaths.with_prefix(prefix)


def _tags(raw: list[str]) -> frozenset[str] | None:
    tags = frozenset(t.strip() for item in raw for t in item.split(",") if t.strip())
    return tags or None


def host_platform(explicit: str | None, features: NodeFeatures, live: bool, default: str) -> tuple[str, str]:
    """The platform key this host (or the --features node) pulls images for, and where it came from:
    --platform; else what the features tell (cpu.cpuid flags, else cpu.model's vendor), the way the
    extender tells a node's platform from its NodeFeature (file source, /debug/whatif); else, on
    the live host, Python's platform.machine(); else registry.platform."""
    if explicit:
        return key_of(explicit), "--platform"
    told = platform_from_features(features, default="")
    if told:
        return told, "told from the features: cpu.cpuid flags, else the cpu.model vendor"
    if live and platform.machine():
        return platform_key(
            Platform("linux", platform.machine())
        ), f"this machine's architecture ({platform.machine()})"
    return key_of(default), "registry.platform: the features tell no architecture"


async def _registry_spec(
    args: argparse.Namespace, features: NodeFeatures, live: bool
) -> tuple[ImageSpec, str, str]:
    config = registry_config(args)
    key, told = host_platform(args.platform, features, live, config.registry.platform)
    client, transport = registry_client(config)
    try:
        ref = parse_reference(args.image)
        client.check_allowed(ref)
        return (await registry_specs(config, client).survey(ref, (key,))).found, key, told
    finally:
        await transport.close()


def _image(args: argparse.Namespace, features: NodeFeatures, live: bool) -> tuple[ImageSpec, str, str]:
    """The image's spec for this host's platform (the variant it would pull), the platform and
    where it came from."""
    try:
        return asyncio.run(_registry_spec(args, features, live))
    except ExtenderError as exc:
        raise CommandError(f"{args.image}: spec lookup failed: {exc}") from None


def _spec(args: argparse.Namespace) -> Spec | None:
    if args.spec is not None:
        try:
            return parse_spec(args.spec.read_bytes())
        except OSError as exc:
            raise CommandError(f"{args.spec}: cannot read: {exc.strerror or exc}") from None
        except ExtenderError as exc:
            raise CommandError(f"{args.spec}: invalid spec: {exc}") from None
    return None


#: the keys of a bare features map (``nfd export features``, a NodeFeature's ``spec.features``)
FEATURE_PARTS = ("flags", "attributes", "instances")


def first_evaluation_error(account: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """(set index, rule name, message) of the first evaluation error in evaluation order: where
    NFD's client would have stopped with an error (``docs/nfd-semantics.md`` §7.2)."""
    for s in account.get("sets") or []:
        if s.get("status") != "error":
            continue
        for r in s.get("rules") or []:
            if r.get("status") == "error":
                return s.get("index", 0), r.get("name") or "(unnamed)", r.get("error") or s.get("error", "")
        return s.get("index", 0), "", s.get("error", "")
    return None


def features_from_file(path: Path, node: str | None) -> NodeFeatures:
    """One node's features from a file: NodeFeature objects (merged per node as nfd-master does) or a
    bare ``{flags, attributes, instances}`` map (``nfd export features``)."""
    try:
        docs = load_file(path)
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ExtenderError as exc:
        raise CommandError(str(exc)) from None
    docs = [d for d in docs if d is not None]
    if len(docs) == 1 and isinstance(docs[0], dict) and "kind" not in docs[0]:
        unknown = sorted(str(k) for k in docs[0] if k not in FEATURE_PARTS)
        if unknown or not docs[0]:
            what = f"unknown key(s) {', '.join(unknown)}" if unknown else "empty"
            parts = ", ".join(FEATURE_PARTS)
            raise CommandError(f"{path}: neither a NodeFeature object nor a features map ({parts}): {what}")
        try:
            return features_from_dict(node or "", docs[0])
        except ExtenderError as exc:
            raise CommandError(f"{path}: {exc}") from None
    objects = [obj for d, doc in enumerate(docs) for _, obj in objects_in(doc, f"document {d}")]
    try:
        by_node = node_features_from_objects(objects)
    except ExtenderError as exc:
        raise CommandError(f"{path}: {exc}") from None
    if not by_node:
        raise CommandError(f"{path}: no NodeFeature object in the file")
    if node is not None:
        if node not in by_node:
            raise CommandError(
                f"{path}: no NodeFeature for node {node!r} (found: {', '.join(sorted(by_node))})"
            )
        return by_node[node]
    if len(by_node) > 1:
        raise CommandError(f"{path}: NodeFeatures for {len(by_node)} nodes; choose one with --node")
    return next(iter(by_node.values()))


def validate_node_command(args: argparse.Namespace) -> int:
    problems: list[str] = []
    try:
        spec = _spec(args)
        if args.features is not None:
            features = features_from_file(args.features, args.node)
            origin: dict[str, Any] = {"file": str(args.features)}
        else:
            paths = _host_paths(args.host_prefix)
            found = discover(paths)
            features, problems = found.features, list(found.problems)
            origin = {"host": {k: str(v) for k, v in paths.roots().items()}}
        if args.image:  # judged by the variant this host's platform pulls (docs/multi-arch.md)
            image, key, told = _image(args, features, args.features is None)
            variant = image.variant(key)
            spec = variant.spec if variant is not None else None
    except CommandError as exc:
        print(f"compat-extender: {exc}", file=sys.stderr)
        return 2
    subject: dict[str, Any] = {"image": args.image} if args.image else {"specFile": str(args.spec)}
    if args.image:
        subject.update(
            platform={"key": key, "from": told}, variant=None if variant is None else variant.to_dict()
        )
        if variant is None:  # the index lacks this platform: this host cannot even pull the image
            message = (
                f"image {args.image}: the image index has no {key} variant "
                "(the kubelet could not pull it on this node)"
            )
            if args.json:
                doc = {
                    **subject,
                    "spec": None,
                    "node": features.node,
                    "compatible": False,
                    "message": message,
                }
                sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
            else:
                print(f"platform: {key} ({told})")
                print(f"{message}: INCOMPATIBLE")
            return 1
        judged_by = variant.describe(sep="\n  ")
    if spec is None:
        message = f"image {args.image} has no compatibility spec: it imposes nothing on nodes"
        if args.image:
            message = (
                f"image {args.image} has no compatibility spec for {key}: it imposes nothing on this node"
            )
        if args.json:
            doc = {**subject, "spec": None, "node": features.node, "compatible": True, "message": message}
            sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            print(message)
        return 0
    tags = _tags(args.tags)
    account = explain(spec, features, node=features.node, tags=tags).to_dict()
    if args.features is not None and not account.get("node"):
        account["node"] = f"(from {args.features})"
    failed = first_evaluation_error(account)
    error = None
    if failed is not None:
        index, rule, message = failed
        where = f"compatibility set #{index}" + (f", rule {rule}" if rule else "")
        error = (
            f"evaluation error in {where}: {message} (NFD's client stops here; the extender counts "
            "that set as not matching on this node)"
        )
    if args.json:
        doc = {
            **subject,
            "spec": {"digest": spec.digest, "sets": len(spec.compatibilities)},
            "warnings": [str(w) for w in spec.warnings],
            "features": origin,
            "problems": problems,
            "tags": sorted(tags) if tags else None,
            "node": account["node"],
            "compatible": account["compatible"],
            "sets": account["sets"],  # each with its failures, grouped per block
        }
        if error is not None:
            doc["error"] = error
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        what = args.image or args.spec
        print(fit(f"{what}: spec {spec.digest}, {len(spec.compatibilities)} compatibility set(s)"))
        if args.image:
            # one piece a line: two digests do not fit 120 columns on one
            print(fit(f"judged by {judged_by}"))
            print(fit(f"platform: {key} ({told})"))
        if args.features is not None:
            print(fit(f"features: from {args.features}"))
        else:
            print(fit(f"features: discovered on this host ({', '.join(origin['host'].values())})"))
        for w in spec.warnings:
            print(fit(f"  warning: {w}"))
        for p in problems:
            print(fit(f"  discovery: {p}"))
        print(render(account), end="")
    if error is not None:  # NFD's client stops with an error here; so does this command
        print(f"compat-extender: {error}", file=sys.stderr)
        return 2
    return 0 if account["compatible"] else 1


def host_features_command(args: argparse.Namespace) -> int:
    found = discover(_host_paths(args.host_prefix))
    nf = found.features
    node = args.node_name or nf.node or "localhost"
    obj = {
        "apiVersion": API_VERSION,
        "kind": "NodeFeature",
        "metadata": {"name": node, "namespace": args.namespace, "labels": {NODE_NAME_LABEL: node}},
        "spec": {
            "features": {
                "flags": {k: {"elements": {f: {} for f in sorted(v)}} for k, v in sorted(nf.flags.items())},
                "attributes": {
                    k: {"elements": dict(sorted(v.items()))} for k, v in sorted(nf.attributes.items())
                },
                "instances": {
                    k: {"elements": [{"attributes": dict(sorted(i.items()))} for i in v]}
                    for k, v in sorted(nf.instances.items())
                },
            }
        },
    }
    for p in found.problems:
        print(f"compat-extender: discovery: {p}", file=sys.stderr)
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    return 0
