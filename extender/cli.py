"""``compat-extender``: the command line.

    compat-extender serve [--config FILE] [--host H] [--port P] [--features DIR] [--images FILE] ...
    compat-extender check-spec FILE...
    compat-extender attach --image REF --spec FILE      (see extender/cli_registry.py)
    compat-extender discover --image REF
    compat-extender validate-node (--image REF | --spec FILE)  (see extender/cli_validate.py)
    compat-extender host-features
    compat-extender explain --image REF [--node NAME]   (see extender/cli_explain.py)

Exit codes: 0 success, 1 a check failed (``check-spec``: a spec NFD would reject; ``validate-node``
and ``explain``: incompatible), 2 bad usage, configuration or any other error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from extender import cli_explain, cli_registry, cli_validate
from extender.config import Config, load_config, to_dict
from extender.errors import ConfigError, ExtenderError
from extender.http.app import AppSettings, build_app, build_debug_app
from extender.http.metrics import Metrics
from extender.http.tls import ReloadingContext, TlsFiles
from extender.sources.from_config import open_sources
from extender.spec.parse import parse_spec

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("compat-extender")

# flag dest -> dotted config key
_OVERRIDES = {
    "host": "listen.host",
    "port": "listen.port",
    "prefix": "pathPrefix",
    "failure_policy": "failurePolicy",
    "missing_features": "missingFeatures",
    "max_body_bytes": "maxBodyBytes",
    "debug": "debug.enabled",
    "debug_port": "debug.port",
    "features": "features.path",
    "images": "specs.images",
    "features_source": "features.source",
    "specs_source": "specs.source",
    "kubeconfig": "features.kubeconfig",
    "platform": "registry.platform",
    "reload_seconds": None,  # both sources
    "log_level": "logLevel",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compat-extender", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the scheduler extender (HTTP)")
    s.add_argument("--config", type=Path, help="YAML config file (see config/extender.yaml)")
    s.add_argument("--host", help="listen address [listen.host]")
    s.add_argument("--port", type=int, help="listen port [listen.port]")
    s.add_argument("--prefix", help="path prefix of /filter and /prioritize [pathPrefix]")
    s.add_argument("--failure-policy", choices=["Fail", "Ignore"], help="[failurePolicy]")
    s.add_argument("--missing-features", choices=["fail", "pass"], help="[missingFeatures]")
    s.add_argument("--max-body-bytes", type=int, help="[maxBodyBytes]")
    s.add_argument("--debug", action=argparse.BooleanOptionalAction, help="debug endpoints [debug.enabled]")
    s.add_argument("--debug-port", type=int, help="serve /debug/* on this port (0: main port) [debug.port]")
    s.add_argument("--features", type=Path, help="directory of NodeFeature files [features.path]")
    s.add_argument("--images", type=Path, help="image -> spec mapping file [specs.images]")
    s.add_argument("--reload-seconds", type=float, help="file reload interval, 0 = never")
    s.add_argument("--features-source", choices=["files", "kubernetes"], help="[features.source]")
    s.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster) [features.kubeconfig]")
    s.add_argument("--specs-source", choices=["files", "registry"], help="[specs.source]")
    s.add_argument("--platform", help="os/arch[/variant] for multi-arch images [registry.platform]")
    s.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[logLevel]")
    s.add_argument("--print-config", action="store_true", help="print the effective config and exit")

    c = sub.add_parser("check-spec", help="parse image compatibility spec files the way NFD does")
    c.add_argument("files", nargs="+", type=Path)
    cli_registry.add_parsers(sub)
    cli_validate.add_parsers(sub)
    cli_explain.add_parser(sub)
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    for dest, key in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value.resolve())
        if key is None:
            overrides["features.reloadSeconds"] = value
            overrides["specs.reloadSeconds"] = value
        else:
            overrides[key] = value
    return load_config(args.config, overrides)


def settings_from(config: Config) -> AppSettings:
    return AppSettings(
        prefix=config.pathPrefix,
        max_body_bytes=config.maxBodyBytes,
        failure_policy=config.failurePolicy,
        missing_features=config.missingFeatures,
        detail_limit=config.detailLimit,
        debug=config.debug.enabled and config.debug.port == 0,
        debug_max_nodes=config.debug.maxNodes,
        client_cert_required=config.tls.clientCAFile is not None,
    )


def tls_from(config: Config) -> ReloadingContext | None:
    """The listeners' TLS context when ``tls.certFile`` is set (ConfigError when it does not load)."""
    t = config.tls
    if t.certFile is None or t.keyFile is None:
        return None
    return ReloadingContext(TlsFiles(t.certFile, t.keyFile, t.clientCAFile))


async def serve(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[list[str]], None] | None = None,
) -> None:
    """Load the sources, start the listener(s), reload files until ``stop`` (or SIGTERM/SIGINT).
    ``on_listening`` gets the base URLs (main listener first) once they accept connections."""
    from aiohttp import web  # the pure commands (check-spec) do not need the server stack

    tls = tls_from(config)  # before the sources: a bad certificate stops startup at once
    async with open_sources(config) as sources:
        metrics = Metrics()
        metrics.watch(sources.features, sources.lookups, sources.watched, sources.caches)
        if tls is not None:
            tls.on_reload = lambda ok: metrics.tls_reloads.labels("ok" if ok else "error").inc()
        settings = settings_from(config)
        args = (sources.features, sources.lookups, settings)
        app = build_app(*args, metrics=metrics, sources=sources.watched, caches=sources.caches)
        access_log = logging.getLogger("aiohttp.access") if config.logLevel == "debug" else None
        runners = [web.AppRunner(app, access_log=access_log, shutdown_timeout=10.0)]
        addresses = [(config.listen.host, config.listen.port)]
        if config.debug.enabled and config.debug.port:
            debug_app = build_debug_app(
                *args, metrics=metrics, sources=sources.watched, caches=sources.caches
            )
            runners.append(web.AppRunner(debug_app, access_log=access_log, shutdown_timeout=10.0))
            addresses.append((config.debug.host, config.debug.port))
        reload = None
        if tls is not None and config.tls.reloadSeconds > 0:
            reload = asyncio.create_task(_reload_tls(tls, config.tls.reloadSeconds))
        try:
            await _listen(runners, addresses, stop, on_listening, sources.summary, config, tls)
        finally:
            if reload is not None:
                reload.cancel()
                await asyncio.gather(reload, return_exceptions=True)


async def _reload_tls(tls: ReloadingContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        tls.check()


async def _listen(
    runners: list[web.AppRunner],
    addresses: list[tuple[str, int]],
    stop: asyncio.Event | None,
    on_listening: Callable[[list[str]], None] | None,
    summary: str,
    config: Config,
    tls: ReloadingContext | None = None,
) -> None:
    from aiohttp import web

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    urls: list[str] = []
    try:
        for runner, (host, port) in zip(runners, addresses, strict=True):
            await runner.setup()
            ssl_context = tls.outer if tls is not None else None
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
            bound_host, bound_port = runner.addresses[0][:2]
            urls.append(f"{'https' if tls is not None else 'http'}://{bound_host}:{bound_port}")
            log.info("listening on %s%s", urls[-1], " (debug endpoints)" if len(urls) > 1 else "")
        log.info("%s; debug endpoints %s", summary, "off" if not config.debug.enabled else f"on {urls[-1]}")
        if on_listening is not None:
            on_listening(urls)
        await stop.wait()
        log.info("stopping: draining in-flight requests")
    finally:
        for runner in runners:
            await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _check_specs(files: Sequence[Path]) -> int:
    status = 0
    for path in files:
        try:
            spec = parse_spec(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        except ExtenderError as exc:
            print(f"{path}: INVALID: {exc}")
            status = max(status, 1)
            continue
        tags = sorted({c.tag for c in spec.compatibilities if c.tag})
        print(
            f"{path}: ok, {len(spec.compatibilities)} compatibility sets"
            + (f", tags {', '.join(tags)}" if tags else "")
            + f", digest {spec.digest}"
        )
        for w in spec.warnings:
            print(f"  warning: {w}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-spec":
        return _check_specs(args.files)
    if args.command == "attach":
        return asyncio.run(cli_registry.attach_command(args))
    if args.command == "discover":
        return asyncio.run(cli_registry.discover_command(args))
    if args.command == "validate-node":
        return cli_validate.validate_node_command(args)
    if args.command == "host-features":
        return cli_validate.host_features_command(args)
    if args.command == "explain":
        return cli_explain.explain_command(args)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"compat-extender: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(to_dict(config), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    logging.basicConfig(
        level=config.logLevel.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"compat-extender: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the address does not exist, ...
        print(f"compat-extender: cannot serve: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
