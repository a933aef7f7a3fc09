"""``compat-extender serve``: load the configured sources, start the listener(s) (main and, when it
has a port of its own, debug), reload TLS files, and stop cleanly on SIGTERM/SIGINT.

Startup and shutdown go through one :class:`contextlib.AsyncExitStack`: whatever was started
registers its own cleanup as it starts, and everything started is undone in reverse order, also
when a later step fails. A cleanup that fails is not swallowed: it propagates after the others ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from extender.config import Config, load_config, to_dict
from extender.errors import ConfigError
from extender.http.app import AppSettings, build_app, build_debug_app
from extender.http.metrics import Metrics, build_info
from extender.http.tls import ReloadingContext, TlsFiles
from extender.sources.from_config import open_sources, start_task

log = logging.getLogger("compat-extender")

#: How long a stopping listener waits for in-flight requests before closing their connections.
DRAIN_SECONDS = 10.0

# flag dest -> dotted config key
_OVERRIDES = {
    "host": "listen.host",
    "port": "listen.port",
    "prefix": "pathPrefix",
    "failure_policy": "failurePolicy",
    "missing_features": "missingFeatures",
    "missing_platform": "missingPlatform",
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


DESCRIPTION = """\
Run the kube-scheduler extender: /filter and /prioritize (the scheduler's extender verbs), /healthz,
/readyz and /metrics, and /debug/* when debug.enabled is set (on the main port, or on debug.port
when that is set). Node features come from a directory of NodeFeature files or from the Kubernetes
API (features.source); specs from an image -> spec mapping file or from the images' registries
(specs.source).

Settings are read from the --config files (a later file merged over the earlier ones); a flag
overrides the configuration key shown in [brackets] after it. SIGTERM or SIGINT stops the server
once the requests in flight are answered.
"""

EPILOG = """\
examples:
  compat-extender serve --config config/extender.yaml
  compat-extender serve --features examples/nodefeatures --images examples/images.yaml --port 8888
  compat-extender serve --config config/extender.yaml --config site.yaml --print-config

exit codes:
  0  stopped by SIGTERM or SIGINT (or --print-config printed the configuration)
  2  bad usage, a configuration error (the message names the key), or the address cannot be
     listened on
"""


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "serve",
        help="run the scheduler extender (HTTP)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--config",
        type=Path,
        action="append",
        help="YAML config file (see config/extender.yaml); repeat it to merge later files over earlier"
        " ones (mappings key by key, other values replaced)",
    )
    s.add_argument("--host", help="listen address [listen.host]")
    s.add_argument("--port", type=int, help="listen port [listen.port]")
    s.add_argument("--prefix", help="path prefix of /filter and /prioritize [pathPrefix]")
    s.add_argument("--failure-policy", choices=["Fail", "Ignore"], help="[failurePolicy]")
    s.add_argument("--missing-features", choices=["fail", "pass"], help="[missingFeatures]")
    s.add_argument("--missing-platform", choices=["fail", "pass"], help="[missingPlatform]")
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
        missing_platform=config.missingPlatform,
        detail_limit=config.detailLimit,
        debug=config.debug.enabled and config.debug.port == 0,
        debug_max_nodes=config.debug.maxNodes,
        debug_max_seconds=config.debug.maxSeconds,
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

    build = build_info()
    log.info(
        "compat-extender %s starting (Python %s, revision %s)",
        build["version"],
        build["python_version"],
        build["revision"],
    )
    tls = tls_from(config)  # before the sources: a bad certificate stops startup at once
    stop = stop or asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        sources = await stack.enter_async_context(open_sources(config))
        metrics = Metrics()
        metrics.watch(sources.features, sources.lookups, sources.watched, sources.caches, sources.wakeups)
        if tls is not None:
            tls.on_reload = lambda ok: metrics.tls_reloads.labels("ok" if ok else "error").inc()
            if config.tls.reloadSeconds > 0:
                start_task(stack, _reload_tls(tls, config.tls.reloadSeconds), "reload-tls")
        settings = settings_from(config)
        args = (sources.features, sources.lookups, settings)
        app = build_app(*args, metrics=metrics, sources=sources.watched, caches=sources.caches)
        listeners = [(app, config.listen.host, config.listen.port)]
        if config.debug.enabled and config.debug.port:
            debug_app = build_debug_app(
                *args, metrics=metrics, sources=sources.watched, caches=sources.caches
            )
            listeners.append((debug_app, config.debug.host, config.debug.port))
        _stop_on_signals(stack, stop)
        access_log = logging.getLogger("aiohttp.access") if config.logLevel == "debug" else None
        urls: list[str] = []
        for app, host, port in listeners:
            runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=DRAIN_SECONDS)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)  # drains in-flight requests, then closes
            await web.TCPSite(runner, host, port, ssl_context=tls.outer if tls is not None else None).start()
            bound_host, bound_port = runner.addresses[0][:2]
            urls.append(f"{'https' if tls is not None else 'http'}://{bound_host}:{bound_port}")
            log.info("listening on %s%s", urls[-1], " (debug endpoints)" if len(urls) > 1 else "")
        debug = "off" if not config.debug.enabled else f"on {urls[-1]}"
        log.info("%s; debug endpoints %s", sources.summary, debug)
        if on_listening is not None:
            on_listening(urls)
        await stop.wait()
        log.info("stopping: draining in-flight requests")


def _stop_on_signals(stack: contextlib.AsyncExitStack, stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` until ``stack`` closes (where the loop can take signal
    handlers: the main thread of a Unix process)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no Unix signals
            continue
        stack.callback(loop.remove_signal_handler, sig)


async def _reload_tls(tls: ReloadingContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        tls.check()


def serve_command(args: argparse.Namespace) -> int:
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
