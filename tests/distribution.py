"""Run Debian's ``docker-registry`` (distribution 2.8, a real registry without the referrers API) on
loopback for the tests: one process per configuration, on a free port, with its own storage.

``make test`` installs the package (see the Makefile). ``data/registry/htpasswd`` holds user
:data:`USER` with password :data:`PASSWORD`, hashed with bcrypt (which distribution requires) at the
minimum cost, 4, so that the tests stay quick.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BINARY = "docker-registry"
HTPASSWD = Path(__file__).parent / "data" / "registry" / "htpasswd"
USER = "tester"
PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class Distribution:
    host: str  # 127.0.0.1:<port>, as an image reference spells it
    auth: bool
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(root: Path, port: int, auth: bool) -> str:
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
    if auth:
        lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {HTPASSWD}"]
    return "\n".join(lines) + "\n"


@contextmanager
def run_distribution(root: Path, *, auth: bool) -> Iterator[Distribution]:
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError(f"{BINARY} is not installed (`make test` installs Debian's docker-registry)")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = _free_port()
        config = root / "config.yml"
        config.write_text(_config(root, port, auth))
        log = (root / "registry.log").open("wb")
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            if _wait_ready(f"http://127.0.0.1:{port}/v2/", proc):
                yield Distribution(f"127.0.0.1:{port}", auth, root)
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


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # e.g. the port was taken between choosing and binding: try another
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            time.sleep(0.05)
    return False
