"""A reading that is costly to take, taken at most once per time to live: callers in between
get the last one, and callers arriving while it is taken share that one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Reading(Generic[T]):
    def __init__(self, take: Callable[[], Awaitable[T]], ttl_s: float) -> None:
        self.take = take
        self.ttl_s = ttl_s
        self._value: tuple[T, float] | None = None
        self._taking: asyncio.Task[T] | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._value[1] < self.ttl_s:
            return self._value[0]
        if self._taking is None:
            self._taking = asyncio.get_running_loop().create_task(self._take())
        # Shielded: a caller that goes away does not cancel the reading the others await.
        return await asyncio.shield(self._taking)

    async def _take(self) -> T:
        try:
            value = await self.take()
            self._value = (value, time.monotonic())
            return value
        finally:
            self._taking = None
