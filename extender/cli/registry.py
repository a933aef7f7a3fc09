"""``compat-extender attach`` and ``compat-extender discover``: the registry side, for image authors.

    compat-extender attach --image REF --spec FILE [--platform OS/ARCH[/VARIANT]] [--strict]
                           [--created TIME] [--annotation K=V]...
    compat-extender discover --image REF [--platform OS/ARCH[/VARIANT]] [--json]

Both take the ``registry`` section of ``--config`` (credentials, plain-HTTP hosts, CA files,
allow-list, limits), and ``--docker-config``/``--plain-http`` on top. Exit codes: 0 done (discover:
an artifact would be used), 1 attach: the spec is invalid (with ``--strict``: or has warnings or
pitfalls; it is linted like ``check-spec`` before anything is pushed) / discover: no artifact,
2 any other error (registry, credentials, configuration).

For a multi-arch image (docs/multi-arch.md): ``discover`` shows, for every platform the index has
(or only ``--platform``), the manifest a node of that platform pulls and the artifact that judges it
(the manifest's own, else the index's, else none; :meth:`RegistrySpecs.survey`); ``attach
--platform`` attaches to that platform's manifest of the index instead of to the index.
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
from extender.platforms import key_of, parse_platform_spec
from extender.sources.from_config import registry_client, registry_specs
from extender.sources.registry.attach import attach
from extender.sources.registry.lookup import Survey
from extender.sources.registry.manifests import ANNOTATION_CREATED, Descriptor, parse_rfc3339
from extender.spec.lint import lint_spec
from extender.spec.model import Spec
from extender.spec.variants import Variant

ATTACH_DESCRIPTION = """\
Push an image compatibility spec to the image's registry as an OCI artifact whose subject is the
image (artifactType application/vnd.nfd.image-compatibility.v1alpha1), the way NFD's image
compatibility expects to find it. The spec is checked first as check-spec checks it; an invalid
spec (with --strict: also one with warnings or pitfalls) is not pushed. Where the registry has no
referrers API, the artifact is added to the referrers tag-schema index.

The subject is what --image resolves to: for a multi-arch image, the index, whose artifact judges
nodes of every platform whose manifest has none of its own. With --platform it is that platform's
manifest of the index instead, whose artifact wins over the index's for nodes of that platform
(see docs/multi-arch.md); an image that is not an index, or has no such platform, is an error.

The registry section of --config applies (credentials, plain-HTTP hosts, CA files, allow-list,
limits), with --docker-config and --plain-http on top.
"""

ATTACH_EPILOG = """\
examples:
  compat-extender attach --image registry.example.com/hpc/solver:2024.2 --spec solver-compat.yaml
  compat-extender attach --image localhost:5000/app:1.0 --spec app.yaml --plain-http --strict
  compat-extender attach --image registry.example.com/hpc/solver:2024.2 --spec solver-arm64.yaml \
      --platform linux/arm64

exit codes:
  0  attached (or it was attached before, with the same content)
  1  the spec is invalid, or with --strict has warnings or pitfalls: nothing was pushed
  2  bad usage, or any other error (registry, credentials, configuration, unreadable file, a
     --platform the image does not have or an image that is not an index)
"""

DISCOVER_DESCRIPTION = """\
List the compatibility artifacts that refer to an image, through the referrers API or the tag-schema
index, and mark the ones the extender uses: of each manifest's referrers, the newest by
org.opencontainers.image.created. Reads the same registry settings as attach, and pushes nothing.

For a multi-arch image (an index), the referrers of the index and of every platform's manifest are
listed, and for every platform the index has, which manifest a node of that platform pulls and
which artifact judges it: the manifest's own, else the index's (it applies to every platform
without one), else none (docs/multi-arch.md). --platform narrows that to one platform (os/arch
[/variant], compared as container runtimes do: arm64 is arm64/v8); a platform the index lacks is
reported as such.
"""

DISCOVER_EPILOG = """\
examples:
  compat-extender discover --image registry.example.com/hpc/solver:2024.2
  compat-extender discover --image registry.example.com/hpc/solver:2024.2 --platform linux/arm64 --json

exit codes:
  0  an artifact was found: the extender would use its spec (for a multi-arch image: on the index
     or on some platform's manifest; with --platform: one that judges nodes of that platform)
  1  no compatibility artifact: the extender treats the image as having no spec (with --platform:
     none judges that platform, or the index has no manifest for it)
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
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="attach to this platform's manifest of the multi-arch index, not to the index",
    )
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
    d.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="of a multi-arch image, show only this platform [every platform the index has]",
    )
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
        platform = parse_platform_spec(args.platform) if args.platform else None
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
        done = await attach(
            client, ref, spec, created=args.created, annotations=annotations, platform=platform
        )
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
    where = f" ({done.platform} manifest of the index {done.index})" if done.platform else ""
    print(f"attached {done.artifact.digest} to {ref.name}@{done.subject.digest}{where}: {how}")
    return 0


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValueError(f"--annotation {text!r}: expected KEY=VALUE")
    return key, value


def _row(d: Descriptor, used: set[str]) -> dict[str, Any]:
    return {
        "digest": d.digest,
        "artifactType": d.artifact_type,
        "created": d.annotation(ANNOTATION_CREATED),
        "size": d.size,
        "used": d.digest in used,
    }


def _spec_doc(spec: Spec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"digest": spec.digest, "sets": len(spec.compatibilities), "warnings": len(spec.warnings)}


def _variant_doc(variant: Variant | None, index: str) -> dict[str, Any] | None:
    """What a node of one platform is judged by; ``None``: the index has no manifest for it."""
    if variant is None:
        return None
    return {
        **variant.to_dict(),  # origin platform: the manifest's own artifact; index: the index's; none
        "manifest": variant.manifest,
        "subject": {"platform": variant.manifest, "index": index}.get(variant.origin),
        "spec": _spec_doc(variant.spec),
    }


def discovery(survey: Survey) -> dict[str, Any]:
    """The JSON form of what ``discover`` found (``platforms`` is ``None`` for an image that is not
    an index: its one artifact judges nodes of every platform)."""
    found = survey.found
    variants = found.variants
    if variants is None:
        used = {found.artifact} if found.artifact else set()
    else:
        used = {v.artifact for v in variants.values() if v is not None and v.artifact}
    platforms_of: dict[str, list[str]] = {}
    for platform, variant in (variants or {}).items():
        if variant is not None:
            platforms_of.setdefault(variant.manifest, []).append(platform)
    listings = [
        {
            "subject": subject,
            "platform": ", ".join(platforms_of.get(subject, [])) or None,
            "via": listing.via,
            "filteredByRegistry": listing.filtered,
            "referrers": [_row(d, used) for d in listing.descriptors],
        }
        for subject, listing in survey.listings
    ]
    own = None if not found.artifact else {"digest": found.artifact, "subject": found.digest}
    return {
        "image": found.image,
        "digest": found.digest,
        "multiArch": found.multi_arch,
        "listings": listings,
        "used": own,  # the image's own artifact (an index's: for platforms without their own)
        "spec": _spec_doc(found.spec),
        "platforms": None
        if variants is None
        else {p: _variant_doc(v, found.digest) for p, v in variants.items()},
        "indexPlatforms": list(survey.platforms) if found.multi_arch else None,
    }


def _print_discovery(doc: dict[str, Any], survey: Survey) -> None:
    found = survey.found
    kind = ""
    if found.multi_arch:
        kind = f" (a multi-arch index of {', '.join(survey.platforms) or 'no platform'})"
    print(f"{doc['image']} -> {doc['digest']}{kind}")
    for listing in doc["listings"]:
        whose = f"{listing['platform']} manifest, " if listing["platform"] else ""
        if found.multi_arch and listing["subject"] == doc["digest"]:
            whose = "the index, "
        print(f"  referrers of {listing['subject']} ({whose}via {listing['via']}):")
        if not listing["referrers"]:
            print("    none")
        for r in listing["referrers"]:
            mark = "*" if r["used"] else " "
            kind, created = r["artifactType"] or "-", r["created"] or "-"
            print(f"  {mark} {r['digest']}  {kind}  {created}  {r['size']} B")
    if found.variants is None:
        if found.spec is None:
            print("no image compatibility artifact: the extender treats this image as having no spec")
        else:
            print(
                f"uses {found.artifact} (refers to {found.digest}): "
                f"{len(found.spec.compatibilities)} compatibility set(s), spec {found.spec.digest}"
            )
        return
    if not survey.chosen:
        print("no image compatibility artifact: the extender treats this image as having no spec")
    print("a node of each platform is judged by:")
    for platform, variant in found.variants.items():
        if variant is None:
            print(
                f"  {platform}: the index has no manifest for it: a node of this platform cannot "
                "pull the image (the extender fails such a node when the image has an artifact, "
                "unless missingPlatform: pass)"
            )
        elif variant.spec is None:
            print(f"  {variant.describe()}")
        else:
            sets = len(variant.spec.compatibilities)
            print(f"  {variant.describe()}: {sets} compatibility set(s), spec {variant.spec.digest}")
    present = [v for v in found.variants.values() if v is not None]
    if found.spec is not None and present and all(v.origin == "platform" for v in present):
        print(
            f"the index's own artifact {found.artifact} judges none of these platforms: "
            "each has an artifact of its own"
        )


async def discover_command(args: argparse.Namespace) -> int:
    try:
        config = registry_config(args)
        ref = parse_reference(args.image)
        asked = (key_of(args.platform),) if args.platform else None
    except ExtenderError as exc:
        return _fail(str(exc))
    client, transport = registry_client(config)
    specs = registry_specs(config, client)
    try:
        client.check_allowed(ref)
        survey = await specs.survey(ref, asked, use_cache=False)
    except ExtenderError as exc:
        return _fail(f"{ref}: {exc}")
    finally:
        await transport.close()
    doc = discovery(survey)
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_discovery(doc, survey)
    # some artifact found: with --platform, one that judges that platform
    if asked:
        judged = [survey.found.variant(p) for p in asked]
        return 0 if any(v is not None and v.spec is not None for v in judged) else 1
    return 0 if survey.chosen else 1
