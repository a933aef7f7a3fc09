"""A protocol-level stand-in for the Kubernetes API server: just enough of list and watch, with the
real wire format, to test the NodeFeature source through the real HTTP client.

* ``GET <path>?limit=&continue=`` answers a ``List`` with ``metadata.resourceVersion`` and
  ``continue`` tokens (an expired token is 410 with a ``Status`` body, as the real server does);
* ``GET <path>?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N`` streams
  newline-delimited ``{"type": ..., "object": ...}`` events after RV, then waits for new ones until
  the timeout; an RV older than the compaction point gets an ``ERROR`` event carrying a 410
  ``Status`` (that is how a watch reports "too old": the HTTP status is 200);
* faults on demand: the next requests answer 500, the next watch is cut in the middle of an event,
  bookmarks can be sent to every open watch.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class Store:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)


class FakeApiServer:
    def __init__(self) -> None:
        self.rv = 100
        self.stores: dict[str, Store] = {}
        self.compacted = 0  # watches from an RV below this get 410
        self.changed = asyncio.Condition()
        self.fail_next = 0  # answer this many requests with 500
        self.cut_next_watch = False  # the next watch stream ends in the middle of an event
        self.paused = False  # open watches deliver nothing while paused
        self.epoch = 0  # bumped to end every open watch stream
        self.requests: list[str] = []
        self.open_watches = 0
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self.handle)

    # -- driving the cluster ------------------------------------------------------------------

    async def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        store = self.stores.setdefault(path, Store())
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        kind = "MODIFIED" if key in store.objects else "ADDED"
        store.objects[key] = obj
        store.events.append((self.rv, kind, obj))
        await self._notify()
        return obj

    async def delete(self, path: str, namespace: str, name: str) -> None:
        store = self.stores.setdefault(path, Store())
        obj = store.objects.pop((namespace, name))
        self.rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        store.events.append((self.rv, "DELETED", obj))
        await self._notify()

    async def compact(self) -> None:
        """Forget every event so far and end the open watches: a client that had not seen
        everything resumes from a resourceVersion that is now too old, and gets 410 Gone."""
        self.compacted = self.rv  # the current resourceVersion stays watchable, as after a fresh list
        for store in self.stores.values():
            store.events.clear()
        self.epoch += 1
        await self._notify()

    async def resume(self) -> None:
        self.paused = False
        await self._notify()

    async def bookmark(self) -> None:
        self.rv += 1
        for store in self.stores.values():
            store.events.append((self.rv, "BOOKMARK", {"metadata": {"resourceVersion": str(self.rv)}}))
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # -- the HTTP side --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response(
                status(500, "InternalError", "etcdserver: request timed out"), status=500
            )
        store = self.stores.setdefault(request.path, Store())
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request, store)
        return self._list(request, store)

    def _list(self, request: web.Request, store: Store) -> web.Response:
        items = [store.objects[k] for k in sorted(store.objects)]
        limit = int(request.query.get("limit", "0") or 0)
        start = 0
        rv = self.rv
        token = request.query.get("continue")
        if token:
            start_s, rv_s = token.split(":")
            if int(rv_s) < self.compacted:
                return web.json_response(
                    status(410, "Expired", "The provided continue parameter is too old"), status=410
                )
            start, rv = int(start_s), int(rv_s)
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            meta["continue"] = f"{start + limit}:{rv}"
        return web.json_response({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page})

    async def _watch(self, request: web.Request, store: Store) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.rv)
        timeout = float(request.query.get("timeoutSeconds", "30"))
        bookmarks = request.query.get("allowWatchBookmarks") == "true"
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        self.open_watches += 1
        try:
            if since < self.compacted:
                await resp.write(
                    orjson.dumps(
                        {
                            "type": "ERROR",
                            "object": status(
                                410, "Expired", f"too old resource version: {since} ({self.compacted})"
                            ),
                        }
                    )
                    + b"\n"
                )
                return resp
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            sent = since
            epoch = self.epoch
            while True:
                if self.epoch != epoch:
                    return resp
                pending = [] if self.paused else [(rv, t, o) for rv, t, o in store.events if rv > sent]
                for rv, kind, obj in pending:
                    sent = rv
                    if kind == "BOOKMARK" and not bookmarks:
                        continue
                    line = orjson.dumps({"type": kind, "object": obj}) + b"\n"
                    if self.cut_next_watch:
                        self.cut_next_watch = False
                        await resp.write(line[: len(line) // 2])
                        return resp
                    await resp.write(line)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return resp
                async with self.changed:
                    try:
                        await asyncio.wait_for(self.changed.wait(), remaining)
                    except TimeoutError:
                        return resp
        finally:
            self.open_watches -= 1
