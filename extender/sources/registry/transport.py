"""The registry client's only I/O: one HTTP request in, status + headers + a size-capped body out.

:class:`Transport` is the seam (as httpx puts its I/O behind a transport): the protocol logic in
:mod:`extender.sources.registry.client` never touches aiohttp, and a test can count or fake requests
at this one place. :class:`AiohttpTransport` is the real one:

* every body is read in full, but never more than the caller's ``limit``: a ``Content-Length`` over
  it is refused before reading, a body that grows past it is cut off (:class:`BodyTooLargeError`);
* a body shorter than its ``Content-Length`` (connection closed mid-body), a timeout, a refused
  connection or a TLS failure is a :class:`RegistryTransportError` naming the URL;
* redirects are *not* followed here (the client decides, and drops ``Authorization`` when it does);
* per-host CA bundles (``caFiles``) give that host its own TLS context; other hosts use the system's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from extender.errors import BodyTooLargeError, RegistryError, RegistryTransportError

USER_AGENT = "nfd-compat-extender"
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    method: str
    url: str
    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def media_type(self) -> str:
        """``Content-Type`` without parameters, lower-cased ("" when absent)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()


class Transport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        limit: int,
    ) -> Response:
        """Send one request; raise RegistryTransportError / BodyTooLargeError."""
        ...

    async def close(self) -> None: ...


def _ssl_context(path: Path) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(f"caFiles: cannot load {path}: {exc}") from None


class AiohttpTransport:
    """:class:`Transport` over one pooled ``aiohttp.ClientSession`` (created on first use, in the
    running loop). ``requests`` counts requests sent, for tests and metrics."""

    def __init__(
        self,
        *,
        request_seconds: float = 5.0,
        ca_files: Mapping[str, Path] | None = None,
        connections: int = 64,
        connections_per_host: int = 16,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=request_seconds)
        self._ssl = {host.lower(): _ssl_context(path) for host, path in (ca_files or {}).items()}
        self._connections = connections
        self._per_host = connections_per_host
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._per_host),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        limit: int,
    ) -> Response:
        session = self._client()
        host = urlsplit(url).netloc.lower()
        ssl_arg: ssl.SSLContext | bool = self._ssl.get(host, True)
        self.requests += 1
        try:
            async with session.request(
                method,
                URL(url, encoded=True),  # as built: keep %2F in the artifactType query escaped
                headers=dict(headers),
                data=body,
                allow_redirects=False,
                ssl=ssl_arg,
                timeout=self.timeout,
            ) as resp:
                if resp.content_length is not None and resp.content_length > limit:
                    raise BodyTooLargeError(
                        f"{method} {url}: Content-Length {resp.content_length} is over the {limit}-byte limit"
                    )
                data = bytearray()
                async for chunk in resp.content.iter_chunked(CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise BodyTooLargeError(f"{method} {url}: body is over the {limit}-byte limit")
                return Response(method, url, resp.status, resp.headers, bytes(data))
        except TimeoutError:
            raise RegistryTransportError(
                f"{method} {url}: no complete answer within {self.timeout.total:g}s"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise RegistryTransportError(f"{method} {url}: body cut short ({exc})") from None
        except aiohttp.ClientError as exc:
            raise RegistryTransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        except (OSError, asyncio.IncompleteReadError) as exc:  # pragma: no cover - aiohttp wraps these
            raise RegistryTransportError(f"{method} {url}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
