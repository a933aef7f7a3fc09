"""The Kubernetes API over HTTP, for :mod:`extender.sources.kube`: paged lists and watch streams.

Authentication, TLS and the API server address come from kubernetes-asyncio's configuration
(in-cluster service account, or a kubeconfig); requests go through its ``ApiClient`` with the body
left unread, so watch streams are parsed here, line by line, with a bound on the line length and a
clear error when a stream is cut in the middle of an event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from extender.errors import KubeError, WatchExpiredError
from extender.sources.kube import ListPage, ListResult, WatchEvent

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 16 << 20


async def make_api_client(kubeconfig: str = "") -> k8s.ApiClient:
    """In-cluster configuration when running in a pod (and no kubeconfig is named), else the
    kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` when ``kubeconfig`` is empty)."""
    configuration = k8s.Configuration()
    if not kubeconfig:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return k8s.ApiClient(configuration=configuration)
        except k8s_config.ConfigException:
            pass
    await k8s_config.load_kube_config(config_file=kubeconfig or None, client_configuration=configuration)
    return k8s.ApiClient(configuration=configuration)


def _status_error(path: str, status: int, body: bytes, method: str = "GET") -> KubeError:
    try:
        doc = orjson.loads(body)
        message = doc.get("message", "") if isinstance(doc, dict) else ""
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace")
    if status == 410:
        return WatchExpiredError(message or "resourceVersion too old")
    return KubeError(f"{method} {path}: {status} {message}".rstrip(), status)


class ApiClientTransport:
    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        page_size: int = 500,
        watch_seconds: int = 300,
        request_timeout: float = 30.0,
    ) -> None:
        self.api = api
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.request_timeout = request_timeout

    async def _get(self, path: str, query: list[tuple[str, Any]], timeout: aiohttp.ClientTimeout) -> Any:
        try:
            return await self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except aiohttp.ClientError as exc:
            raise KubeError(f"GET {path}: {type(exc).__name__}: {exc}") from exc

    async def list(self, path: str, *, field_selector: str = "") -> ListResult:
        items: list[dict[str, Any]] = []
        resource_version = ""
        async for page in self.list_pages(path, field_selector=field_selector):
            items.extend(page.items)
            resource_version = page.resource_version
        return ListResult(items, resource_version)

    async def list_pages(self, path: str, *, field_selector: str = "") -> AsyncGenerator[ListPage, None]:
        """The list's pages as they arrive; each page's body and decoded document are dropped before
        it is handed over, so only the caller decides what of a page outlives it."""
        token = ""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        while True:
            query: list[tuple[str, Any]] = [("limit", self.page_size)]
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            resp = await self._get(path, query, timeout)
            try:
                body = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise KubeError(f"GET {path}: reading the list: {exc}") from exc
            finally:
                resp.release()
            if resp.status != 200:
                raise _status_error(path, resp.status, body)
            try:
                doc = orjson.loads(body)
                page = doc["items"] or []
                meta = doc.get("metadata") or {}
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise KubeError(f"GET {path}: not a list: {exc}") from exc
            if not isinstance(page, list):
                raise KubeError(f"GET {path}: items is not a list")
            items = [i for i in page if isinstance(i, dict)]
            del body, doc, page, resp  # resp keeps the body too
            token = meta.get("continue") or ""
            yield ListPage(items, str(meta.get("resourceVersion", "")))
            del items
            if not token:
                return

    async def patch(self, path: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of the object at ``path`` (the wake-up's one write); KubeError with the
        status as ``code`` when the API server refuses it."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        try:
            resp = await self.api.call_api(
                path,
                "PATCH",
                body=dict(patch),
                header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except aiohttp.ClientError as exc:
            raise KubeError(f"PATCH {path}: {type(exc).__name__}: {exc}") from exc
        try:
            body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(f"PATCH {path}: reading the answer: {exc}") from exc
        finally:
            resp.release()
        if resp.status != 200:
            raise _status_error(path, resp.status, body, "PATCH")

    def watch(
        self, path: str, resource_version: str, *, field_selector: str = ""
    ) -> AsyncIterator[WatchEvent]:
        return self._watch(path, resource_version, None, field_selector)

    def watch_reporting_open(
        self,
        path: str,
        resource_version: str,
        opened: Callable[[], None],
        *,
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        """:meth:`watch`, calling ``opened()`` as soon as the API server has accepted the watch (the
        200 and its headers arrive at once; events may not come for minutes on a quiet cluster)."""
        return self._watch(path, resource_version, opened, field_selector)

    async def _watch(
        self, path: str, resource_version: str, opened: Callable[[], None] | None, field_selector: str
    ) -> AsyncIterator[WatchEvent]:
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", self.watch_seconds),
        ]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        # no total timeout: a watch is long-lived; a silent connection is cut after sock_read
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.request_timeout, sock_read=self.watch_seconds + 30
        )
        resp = await self._get(path, query, timeout)
        try:
            if resp.status != 200:
                raise _status_error(path, resp.status, await resp.read())
            if opened is not None:
                opened()
            buffer = b""
            try:
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    if len(buffer) > MAX_EVENT_BYTES:
                        raise KubeError(f"watch {path}: an event over {MAX_EVENT_BYTES} bytes")
                    for line in lines:
                        if line.strip():
                            yield _event(path, line)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise KubeError(f"watch {path}: stream broken: {type(exc).__name__}: {exc}") from exc
            if buffer.strip():
                raise KubeError(f"watch {path}: stream cut in the middle of an event ({len(buffer)} bytes)")
        finally:
            resp.release()


def _event(path: str, line: bytes) -> WatchEvent:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise KubeError(f"watch {path}: undecodable event: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("type"), str)
        or not isinstance(doc.get("object"), dict)
    ):
        raise KubeError(f"watch {path}: not a watch event: {line[:200]!r}")
    return WatchEvent(type=doc["type"], object=doc["object"])
