"""List+watch into a local cache, with bookmarks, resume from the last resourceVersion and relist on 410."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from controller.kube.client import ApiError, KubeClient

log = logging.getLogger("controller.kube.informer")

Key = tuple[str, str]  # (namespace, name)
Handler = Callable[[str, dict[str, Any]], None]  # (event type, object)


def obj_key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Informer:
    def __init__(
        self,
        client: KubeClient,
        path: str,
        handler: Handler,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        name: str = "",
    ) -> None:
        self._client = client
        self._path = path
        self._handler = handler
        self._selector = label_selector
        self._watch_timeout = watch_timeout
        self.name = name or path
        self.cache: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._rv = ""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cache.get((namespace, name))

    def update(self, obj: dict[str, Any]) -> None:
        """Store an object we just wrote (the watch may lag); never go back to an older version."""
        key = obj_key(obj)
        old = self.cache.get(key)
        if old is None or _rv(obj) >= _rv(old):
            self.cache[key] = obj

    def forget(self, namespace: str, name: str) -> None:
        self.cache.pop((namespace, name), None)

    def _query(self) -> dict[str, Any]:
        return {"labelSelector": self._selector} if self._selector else {}

    async def _list(self) -> None:
        body = await self._client.request("GET", self._path, {**self._query(), "limit": 500})
        items = list(body.get("items") or [])
        cont = (body.get("metadata") or {}).get("continue")
        while cont:
            page = await self._client.request(
                "GET", self._path, {**self._query(), "limit": 500, "continue": cont}
            )
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
        fresh = {obj_key(o): o for o in items}
        gone = [k for k in self.cache if k not in fresh]
        self.cache = fresh
        self._rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        for key in gone:
            self._notify("DELETED", {"metadata": {"namespace": key[0], "name": key[1]}})
        for obj in items:
            self._notify("ADDED", obj)
        self.synced.set()
        log.debug("Listed objects", extra={"fields": {"informer": self.name, "count": len(items)}})

    async def run(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                if err.gone:
                    need_list = True  # our resourceVersion is too old: relist
                    log.info("Watch expired, relisting", extra={"fields": {"informer": self.name}})
                    continue
                failures += 1
                delay = min(30.0, 0.5 * 2**failures) * (0.5 + random.random())
                log.warning(
                    "Watch failed",
                    extra={"fields": {"informer": self.name, "error": str(err), "retry_in": round(delay, 2)}},
                )
                await asyncio.sleep(delay)
                if failures > 3:
                    need_list = True
                    self.synced.clear()  # /readyz goes red until a relist succeeds
            except Exception as err:
                failures += 1
                need_list = True  # an event may be lost: relist
                self.synced.clear()
                delay = min(30.0, 0.5 * 2**failures) * (0.5 + random.random())
                log.error(
                    "Watch broke, relisting",
                    extra={
                        "fields": {
                            "informer": self.name,
                            "error": f"{type(err).__name__}: {err}"[:500],
                            "retry_in": round(delay, 2),
                        }
                    },
                )
                await asyncio.sleep(delay)

    async def _watch_once(self) -> None:
        query = {
            **self._query(),
            "allowWatchBookmarks": True,
            "timeoutSeconds": self._watch_timeout,
        }
        if self._rv:
            query["resourceVersion"] = self._rv
        async for event in self._client.watch(self._path, query):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise ApiError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._rv = str(rv)
            if kind == "BOOKMARK":
                continue
            key = obj_key(obj)
            if kind == "DELETED":
                self.cache.pop(key, None)
            else:
                old = self.cache.get(key)
                if old is None or _rv(obj) >= _rv(old):
                    self.cache[key] = obj
            self._notify(str(kind), obj)

    def _notify(self, kind: str, obj: dict[str, Any]) -> None:
        try:
            self._handler(kind, obj)
        except Exception as err:
            log.error(
                "Event handler failed",
                extra={"fields": {"informer": self.name, "error": f"{type(err).__name__}: {err}"[:500]}},
            )
