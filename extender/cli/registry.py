"""``compat-extender attach`` and ``compat-extender discover``: the registry side, for image authors.

    compat-extender attach --image REF --spec FILE [--strict] [--created TIME] [--annotation K=V]...
    compat-extender discover --image REF [--platform OS/ARCH[/VARIANT]] [--json]

Both take the ``registry`` section of ``--config`` (credentials, plain-HTTP hosts, CA files,
allow-list, limits), and ``--docker-config``/``--plain-http`` on top. Exit codes: 0 done (discover:
an artifact would be used), 1 attach: the spec is invalid (with ``--strict``: or has warnings or
pitfalls; it is linted like ``check-spec`` before anything is pushed) / discover: no artifact,
2 any other error (registry, credentials, configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import orjson

from extender.cli.check_spec import print_report
from extender.config import Config, load_config
from extender.errors import ConfigError, ExtenderError, SpecError
from extender.images import parse_reference
from extender.sources.from_config import registry_client, registry_specs
from extender.sources.registry.attach import attach
from extender.sources.registry.manifests import ANNOTATION_CREATED, Descriptor, parse_rfc3339
from extender.spec.lint import lint_spec

ATTACH_DESCRIPTION = """\
Push an image compatibility spec to the image's registry as an OCI artifact whose subject is the
image (artifactType application/vnd.nfd.image-compatibility.v1alpha1), the way NFD's image
compatibility expects to find it. The spec is checked first as check-spec checks it; an invalid
spec (with --strict: also one with warnings or pitfalls) is not pushed. Where the registry has no
referrers API, the artifact is added to the referrers tag-schema index.

The registry section of --config applies (credentials, plain-HTTP hosts, CA files, allow-list,
limits), with --docker-config and --plain-http on top.
"""

ATTACH_EPILOG = """\
examples:
  compat-extender attach --image registry.example.com/hpc/solver:2024.2 --spec solver-compat.yaml
  compat-extender attach --image localhost:5000/app:1.0 --spec app.yaml --plain-http --strict

exit codes:
  0  attached (or it was attached before, with the same content)
  1  the spec is invalid, or with --strict has warnings or pitfalls: nothing was pushed
  2  bad usage, or any other error (registry, credentials, configuration, unreadable file)
"""

DISCOVER_DESCRIPTION = """\
List the compatibility artifacts that refer to an image, through the referrers API or the tag-schema
index (for a multi-arch index without an artifact of its own, also those of the --platform child),
and mark the one the extender uses: the newest by org.opencontainers.image.created. Reads the same
registry settings as attach, and pushes nothing.
"""

DISCOVER_EPILOG = """\
examples:
  compat-extender discover --image registry.example.com/hpc/solver:2024.2
  compat-extender discover --image registry.example.com/hpc/solver:2024.2 --platform linux/arm64 --json

exit codes:
  0  an artifact was found: the extender would use its spec
  1  no compatibility artifact: the extender treats the image as having no spec
  2  bad usage, or any error (registry, credentials, configuration, an artifact that cannot be read)
"""


def add_parsers(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--image", required=True, help="image reference, e.g. registry.example.com/app:1.0")
        p.add_argument("--config", type=Path, help="extender config file (its registry section is used)")
        p.add_argument("--docker-config", type=Path, help="docker config.json with credentials")
        p.add_argument(
            "--plain-http", action="store_true", help="talk http:// to the image's registry (not https)"
        )

    a = sub.add_parser(
        "attach",
        help="push a compatibility spec as an OCI artifact referring to an image",
        description=ATTACH_DESCRIPTION,
        epilog=ATTACH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(a)
    a.add_argument("--spec", type=Path, required=True, help="the image compatibility spec (YAML)")
    a.add_argument(
        "--strict",
        action="store_true",
        help="refuse a spec with warnings or pitfalls too (see check-spec --help), not only an invalid one",
    )
    a.add_argument("--created", help="org.opencontainers.image.created (RFC 3339; default: now)")
    a.add_argument(
        "--annotation", action="append", default=[], metavar="KEY=VALUE", help="extra manifest annotation"
    )

    d = sub.add_parser(
        "discover",
        help="list an image's compatibility artifacts and the one that is used",
        description=DISCOVER_DESCRIPTION,
        epilog=DISCOVER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(d)
    d.add_argument("--platform", help="child of a multi-arch index to ask [registry.platform]")
    d.add_argument("--json", action="store_true", help="JSON output")


def registry_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if args.docker_config is not None:
        overrides["registry.dockerConfig"] = str(args.docker_config.resolve())
    if getattr(args, "platform", None):
        overrides["registry.platform"] = args.platform
    config = load_config(args.config, overrides)
    if args.plain_http:
        host = parse_reference(args.image).registry
        registry = dataclasses.replace(config.registry, plainHttp=(*config.registry.plainHttp, host))
        config = dataclasses.replace(config, registry=registry)
    return config


def _fail(message: str) -> int:
    print(f"compat-extender: {message}", file=sys.stderr)
    return 2


async def attach_command(args: argparse.Namespace) -> int:
    try:
        config = registry_config(args)
        ref = parse_reference(args.image)
        spec = args.spec.read_bytes()
        annotations = dict(_pair(a) for a in args.annotation)
        if args.created is not None and parse_rfc3339(args.created) is None:
            raise ConfigError("--created", f"{args.created!r} is not an RFC 3339 time")
    except (ExtenderError, OSError, ValueError) as exc:
        return _fail(str(exc))
    report = lint_spec(spec)  # what check-spec reports, before anything is pushed
    if report.findings:
        print_report(report, str(args.spec), strict=args.strict, file=sys.stderr)
    if report.failed(args.strict):
        print(f"compat-extender: {args.spec}: not attached", file=sys.stderr)
        return 1
    client, transport = registry_client(config)
    try:
        done = await attach(client, ref, spec, created=args.created, annotations=annotations)
    except SpecError as exc:
        print(f"{args.spec}: INVALID: {exc}", file=sys.stderr)
        return 1
    except ExtenderError as exc:
        return _fail(str(exc))
    finally:
        await transport.close()
    how = {
        "registry": "the registry indexed it (referrers API)",
        "tag-schema": "added to the referrers tag-schema index",
        "already listed": "it was attached before (same content)",
    }[done.indexed]
    print(f"attached {done.artifact.digest} to {ref.name}@{done.subject.digest}: {how}")
    return 0


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValueError(f"--annotation {text!r}: expected KEY=VALUE")
    return key, value


def _row(d: Descriptor, chosen: Descriptor | None) -> dict[str, Any]:
    return {
        "digest": d.digest,
        "artifactType": d.artifact_type,
        "created": d.annotation(ANNOTATION_CREATED),
        "size": d.size,
        "used": chosen is not None and d.digest == chosen.digest,
    }


async def discover_command(args: argparse.Namespace) -> int:
    try:
        config = registry_config(args)
        ref = parse_reference(args.image)
    except ExtenderError as exc:
        return _fail(str(exc))
    client, transport = registry_client(config)
    specs = registry_specs(config, client)
    try:
        client.check_allowed(ref)
        found = await specs.find(ref, use_cache=False)
        spec = await specs.spec(ref, found.artifact) if found.artifact is not None else None
    except ExtenderError as exc:
        return _fail(f"{ref}: {exc}")
    finally:
        await transport.close()
    listings: list[dict[str, Any]] = [
        {
            "subject": subject,
            "via": listing.via,
            "filteredByRegistry": listing.filtered,
            "referrers": [_row(d, found.artifact) for d in listing.descriptors],
        }
        for subject, listing in found.listings
    ]
    used = None if found.artifact is None else {"digest": found.artifact.digest, "subject": found.subject}
    doc = {
        "image": str(ref),
        "digest": found.digest,
        "listings": listings,
        "used": used,
        "spec": None
        if spec is None
        else {"digest": spec.digest, "sets": len(spec.compatibilities), "warnings": len(spec.warnings)},
    }
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"{ref} -> {found.digest}")
        for listing in listings:
            print(f"  referrers of {listing['subject']} (via {listing['via']}):")
            if not listing["referrers"]:
                print("    none")
            for r in listing["referrers"]:
                mark = "*" if r["used"] else " "
                kind, created = r["artifactType"] or "-", r["created"] or "-"
                print(f"  {mark} {r['digest']}  {kind}  {created}  {r['size']} B")
        if found.artifact is None:
            print("no image compatibility artifact: the extender treats this image as having no spec")
        else:
            assert spec is not None
            print(
                f"uses {found.artifact.digest} (refers to {found.subject}): "
                f"{len(spec.compatibilities)} compatibility set(s), spec {spec.digest}"
            )
    return 0 if found.artifact is not None else 1
