"""TLS for the extender's listener: a server certificate, optionally client certificates checked
against a CA (mutual TLS, which kube-scheduler's extender ``tlsConfig`` can present), and hot reload.

Rotation without restart: the listener keeps one *outer* ``SSLContext`` whose SNI callback (called
for every handshake, with or without SNI) hands the connection the *current* context. A reload
builds a complete new context from the files (certificate, key, client CA) and swaps it in only
when everything loaded, so a half-written file during rotation (cert-manager or a kubelet Secret
update writing the pair non-atomically) never leaves a broken or mismatched pair in service: the
previous one stays until the files are consistent again. Connections already open keep the
certificate they were established with.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from extender.errors import ConfigError

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: certificates clients present must be signed by it


def _stamp(files: TlsFiles) -> Stamp:
    """What identifies the files' current content cheaply (inode, size, mtime); missing = zeros."""
    out = []
    for path in (files.cert, files.key, files.client_ca):
        if path is None:
            continue
        try:
            st = path.stat()  # follows the ..data symlink of a mounted Secret: a swap changes the inode
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((0, 0, 0))
    return tuple(out)


def build_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context from the files, or :class:`ssl.SSLError` / :class:`OSError` saying why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert, files.key)
    if files.client_ca is not None:
        ctx.load_verify_locations(cafile=files.client_ca)
        # Optional at the TLS layer (a presented certificate must verify; none is allowed, for
        # probes), required per route by the application (extender.http.app: OPEN_PATHS).
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class ReloadingContext:
    """The listener's context (:attr:`outer`) and the current certificate context behind it."""

    def __init__(self, files: TlsFiles, *, on_reload: Callable[[bool], None] | None = None) -> None:
        self.files = files
        self.on_reload = on_reload  # called with True (reloaded) or False (changed files did not load)
        self._stamp = _stamp(files)
        try:
            self.outer = build_context(files)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("tls", f"cannot load {files.cert} / {files.key}: {exc}") from None
        self.outer.sni_callback = self._choose
        self._current = self.outer  # until a reload: handing it out is a no-op
        self.reloads = 0
        self.failures = 0
        self.last_error = ""

    def _choose(self, sock: ssl.SSLObject, server_name: str | None, outer: ssl.SSLContext) -> None:
        sock.context = self._current
        return None

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    def check(self) -> bool:
        """Reload when the files changed; True when a new context is now in use."""
        stamp = _stamp(self.files)
        if stamp == self._stamp:
            return False
        try:
            ctx = build_context(self.files)
        except (ssl.SSLError, OSError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            log.warning("TLS files changed but do not load (keeping the previous certificate): %s", exc)
            if self.on_reload is not None:
                self.on_reload(False)
            return False  # the stamp is kept: try again on the next check
        self._stamp, self._current = stamp, ctx
        self.reloads += 1
        self.last_error = ""
        log.info("TLS certificate reloaded from %s", self.files.cert)
        if self.on_reload is not None:
            self.on_reload(True)
        return True
