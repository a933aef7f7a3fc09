"""Run Debian's ``docker-registry`` (distribution 2.8, a real registry without the referrers API) on
loopback for the tests: one process per configuration, on a free port, with its own storage.

``make test`` installs the package (see the Makefile). ``data/registry/htpasswd`` holds user
:data:`USER` with password :data:`PASSWORD`, hashed with bcrypt (which distribution requires) at the
minimum cost, 4, so that the tests stay quick.
"""

from __future__ import annotations

import functools
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import SAFETY_SECONDS

BINARY = "docker-registry"
HTPASSWD = Path(__file__).parent / "data" / "registry" / "htpasswd"
USER = "tester"
PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class Distribution:
    host: str  # 127.0.0.1:<port>, as an image reference spells it
    auth: bool
    root: Path
    ca: Path | None = None  # the CA that signed its certificate, when it serves TLS

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}"


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl CLI):
    ``(ca.pem, server.pem, server.key)``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
            "-days",
            "2",
            "-subj",
            "/CN=compat-extender test CA",
        ]
    )
    run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            "/CN=127.0.0.1",
        ]
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "2",
            "-extfile",
            str(ext),
        ]
    )
    return ca, cert, key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(root: Path, port: int, auth: bool, tls: tuple[Path, Path] | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if auth:
        lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {HTPASSWD}"]
    return "\n".join(lines) + "\n"


@contextmanager
def run_distribution(root: Path, *, auth: bool, tls: bool = False) -> Iterator[Distribution]:
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError(f"{BINARY} is not installed (`make test` installs Debian's docker-registry)")
    root.mkdir(parents=True, exist_ok=True)
    ca: Path | None = None
    cert_key: tuple[Path, Path] | None = None
    if tls:
        ca, cert, key = make_tls(root / "tls")
        cert_key = (cert, key)
    for attempt in range(3):
        port = _free_port()
        config = root / "config.yml"
        config.write_text(_config(root, port, auth, cert_key))
        log = (root / "registry.log").open("wb")
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            if _wait_ready(f"{'https' if ca else 'http'}://127.0.0.1:{port}/v2/", proc, ca):
                yield Distribution(f"127.0.0.1:{port}", auth, root, ca)
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()
            log.close()
        if attempt == 2:
            break
    raise RuntimeError(f"{BINARY} did not start; see {root / 'registry.log'}")


def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], ca: Path | None, seconds: float = SAFETY_SECONDS
) -> bool:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # e.g. the port was taken between choosing and binding: try another
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            time.sleep(0.05)
    return False
