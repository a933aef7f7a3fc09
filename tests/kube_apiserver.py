"""A protocol-level stand-in for the Kubernetes API server: just enough of list and watch, with the
real wire format, to test the NodeFeature source through the real HTTP client.

* ``GET <path>?limit=&continue=`` answers a ``List`` with ``metadata.resourceVersion`` and
  ``continue`` tokens (an expired token is 410 with a ``Status`` body, as the real server does);
* ``GET <path>?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N`` streams
  newline-delimited ``{"type": ..., "object": ...}`` events after RV, then waits for new ones until
  the timeout; an RV older than the compaction point gets an ``ERROR`` event carrying a 410
  ``Status`` (that is how a watch reports "too old": the HTTP status is 200);
* ``fieldSelector=spec.schedulerName=x,spec.nodeName=`` (``=``, ``==``, ``!=`` on dotted paths; a
  missing field is the empty string) filters lists and watches; in a watch, an object that starts
  matching arrives as ADDED and one that stops matching (a pod that got its ``spec.nodeName``) as
  DELETED carrying its previous content, as the API server's watch cache sends them; a malformed
  selector is 400;
* faults on demand: the next requests answer 500, the next watch is cut in the middle of an event,
  bookmarks can be sent to every open watch, lists can be held (not answered until released);
* restarts: :meth:`FakeApiServer.start` listens on a loopback port, :meth:`FakeApiServer.stop` ends
  every open watch stream and closes the listener and its connections (new ones are refused), and
  ``start()`` again listens on the same port. The objects and the resourceVersion survive, as they
  do in etcd; a real API server also comes back with a new watch cache, so that watches from before
  get 410 Gone: call :meth:`FakeApiServer.compact` while it is down for that.
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


class BadSelector(ValueError):
    pass


Requirement = tuple[list[str], bool, str]  # (dotted path, equal?, value)


def parse_field_selector(text: str) -> list[Requirement]:
    """``a.b=x,c!=y,d==`` -> requirements; every one must hold."""
    out: list[Requirement] = []
    for part in filter(None, text.split(",")):
        op = next((op for op in ("!=", "==", "=") if op in part), "")
        key, _, value = part.partition(op) if op else ("", "", "")
        if not key or "=" in value or "!" in key:
            raise BadSelector(f"invalid field selector requirement {part!r}")
        out.append((key.strip().split("."), op != "!=", value.strip()))
    return out


def field_value(obj: dict[str, Any], path: list[str]) -> str:
    cur: Any = obj
    for step in path:
        cur = cur.get(step) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def matches(obj: dict[str, Any], selector: list[Requirement]) -> bool:
    return all((field_value(obj, path) == value) == equal for path, equal, value in selector)


@dataclass
class Event:
    rv: int
    kind: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    obj: dict[str, Any]  # for DELETED: the object as it was, with the deletion's resourceVersion
    prev: dict[str, Any] | None = None  # the object before a MODIFIED or DELETED


def filtered(event: Event, selector: list[Requirement]) -> tuple[str, dict[str, Any]] | None:
    """What a watch with this field selector sends for ``event``, if anything."""
    if not selector or event.kind == "BOOKMARK":
        return event.kind, event.obj
    now = event.kind != "DELETED" and matches(event.obj, selector)
    before = event.prev is not None and matches(event.prev, selector)
    if now:
        return ("MODIFIED" if before else "ADDED"), event.obj
    if before:
        assert event.prev is not None
        gone = copy.deepcopy(event.prev)  # the last content that matched, at this event's version
        gone["metadata"]["resourceVersion"] = str(event.rv)
        return "DELETED", gone
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Store:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


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
        self.answer_lists = asyncio.Event()  # cleared: lists wait (are held) until it is set again
        self.answer_lists.set()
        self.held_lists = 0  # lists waiting for answer_lists now
        self.patches: list[tuple[str, Any]] = []  # (path, merge patch) of every PATCH applied
        self.refuse_patches: int | None = None  # answer every PATCH with this status (403: RBAC, admission)
        self.app = self.make_app()
        self.port = 0  # the port start() listens on (kept across stop() and start())
        self.shutting_down = False  # between stop() and start(): requests still arriving get 503
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        app.router.add_patch("/{tail:.*}", self.handle_patch)
        return app

    # -- running and restarting -------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1: a free port the first time, the same one after :meth:`stop`. The
        base URL."""
        if self._runner is not None:
            raise RuntimeError("the API server stand-in is already running")
        # a new application each time: one cannot run again once cleaned up
        runner = web.AppRunner(self.make_app(), shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.shutting_down = False
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Go away as an API server that is restarted does: every open watch stream ends, the
        listener and every connection close, and new connections are refused until :meth:`start`."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        # requests on connections that are still open get 503, as from an API server shutting down;
        # the open watch handlers return, so the shutdown does not wait for them
        self.shutting_down = True
        self.epoch += 1
        await self._notify()
        await runner.cleanup()

    # -- driving the cluster ------------------------------------------------------------------

    async def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        store = self.stores.setdefault(path, Store())
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        prev = store.objects.get(key)
        store.objects[key] = obj
        store.events.append(Event(self.rv, "ADDED" if prev is None else "MODIFIED", obj, prev))
        await self._notify()
        return obj

    async def delete(self, path: str, namespace: str, name: str) -> None:
        store = self.stores.setdefault(path, Store())
        obj = store.objects.pop((namespace, name))
        self.rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        store.events.append(Event(self.rv, "DELETED", obj, obj))
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
            store.events.append(Event(self.rv, "BOOKMARK", {"metadata": {"resourceVersion": str(self.rv)}}))
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # -- the HTTP side --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self.shutting_down:
            return web.json_response(
                status(503, "ServiceUnavailable", "apiserver is shutting down"), status=503
            )
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response(
                status(500, "InternalError", "etcdserver: request timed out"), status=500
            )
        store = self.stores.setdefault(request.path, Store())
        try:
            selector = parse_field_selector(request.query.get("fieldSelector", ""))
        except BadSelector as exc:
            return web.json_response(status(400, "BadRequest", str(exc)), status=400)
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request, store, selector)
        if not self.answer_lists.is_set():
            self.held_lists += 1
            try:
                await self.answer_lists.wait()
            finally:
                self.held_lists -= 1
        return self._list(request, store, selector)

    async def handle_patch(self, request: web.Request) -> web.Response:
        """A JSON merge patch (RFC 7386) of one object: ``<collection path>/<name>``, as the API
        server takes ``Content-Type: application/merge-patch+json``; the object changes (a new
        resourceVersion and a MODIFIED event) and is answered."""
        self.requests.append(f"PATCH {request.path_qs}")
        if self.shutting_down:
            return web.json_response(
                status(503, "ServiceUnavailable", "apiserver is shutting down"), status=503
            )
        if self.refuse_patches is not None:
            code = self.refuse_patches
            return web.json_response(
                status(code, "Forbidden", f'nodes is forbidden: cannot patch resource "{request.path}"'),
                status=code,
            )
        if request.content_type != "application/merge-patch+json":
            return web.json_response(
                status(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {request.content_type}",
                ),
                status=415,
            )
        collection, _, name = request.path.rpartition("/")
        store = self.stores.setdefault(collection, Store())
        key = ("", name)
        if key not in store.objects:
            return web.json_response(status(404, "NotFound", f'"{name}" not found'), status=404)
        try:
            patch = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return web.json_response(status(400, "BadRequest", str(exc)), status=400)
        self.patches.append((request.path, patch))
        obj = merge_patch(copy.deepcopy(store.objects[key]), patch)
        return web.json_response(await self.put(collection, obj))

    def _list(self, request: web.Request, store: Store, selector: list[Requirement]) -> web.Response:
        items = [store.objects[k] for k in sorted(store.objects) if matches(store.objects[k], selector)]
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

    async def _watch(
        self, request: web.Request, store: Store, selector: list[Requirement]
    ) -> web.StreamResponse:
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
                pending = [] if self.paused else [e for e in store.events if e.rv > sent]
                for event in pending:
                    sent = event.rv
                    if event.kind == "BOOKMARK" and not bookmarks:
                        continue
                    out = filtered(event, selector)
                    if out is None:
                        continue
                    line = orjson.dumps({"type": out[0], "object": out[1]}) + b"\n"
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
