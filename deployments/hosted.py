"""The one Serve shell every deployment but the gateway uses: a replica hosting one plain
bigEVY object.

`serve.deployment(Hosted, name=...).bind(open_x, *args)`: the replica awaits `open_x(*args)`
(each `deployments/<name>.py` has one) to build its object from settings and the handles of
the deployments it calls, then Serve calls that object's methods by name. The object knows
nothing of Ray; tests build it directly. Plain (def) methods are taken as blocking (SQL,
LanceDB, zstd) and run on worker threads, so one slow call does not hold the replica's event
loop; async methods run on that loop, which is where state the object's own tasks write must
be read (`ConnectorRunner.health_report`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


class Hosted:
    async def __init__(self, open: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.hosted = await open(*args)

    def __getattr__(self, name: str) -> Any:
        # Dunders stay Python's and Serve's own (`__del__`, ...); "hosted" is missing only
        # while the object is being built.
        if name.startswith("__") or name == "hosted":
            raise AttributeError(name)
        attr = getattr(self.hosted, name)
        if not inspect.ismethod(attr) or _is_async(attr):
            return attr

        async def on_a_thread(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attr, *args, **kwargs)

        return on_a_thread


def _is_async(method: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)
