"""The hub that pushes alerts to the nodes streaming from this replica.

Each gateway replica follows the alerts table (every `poll_s`, and at once when an alert is
posted through it), so an alert posted through any replica reaches the streams held by every
replica: the metadata database is the one place replicas already share. A node without a
stream gets its pending alerts in every heartbeat reply instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bigevy.alerts.service import AlertService, Live
from bigevy.http.alerts.protocol import SignedAlert

log = logging.getLogger("ray.serve")
#: A comment line this often keeps proxies and NATs from closing an idle stream.
KEEPALIVE_S = 15.0


#: How often a replica checks that its streams are still their nodes' one stream, and that
#: no node or key among them was revoked.
STREAM_CHECK_S = 2.0


@dataclass(frozen=True)
class _Stream:
    node_id: str
    region: str
    key_id: str
    stream_id: str


class AlertHub:
    """Streams of the nodes connected to this replica, and what each has been pushed."""

    def __init__(
        self,
        alerts: AlertService,
        run: Callable[..., Awaitable[Any]],
        poll_s: float = 0.5,
    ) -> None:
        self.alerts = alerts
        self.run = run
        self.poll_s = poll_s
        self.streams: dict[asyncio.Queue[SignedAlert | None], _Stream] = {}
        self._known: dict[str, int] = {}
        self._checked = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def poke(self) -> None:
        """Look at the alerts table now (an alert was just posted through this replica)."""
        self._ensure_running()
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            try:
                await self._push_new(await self.run(self.alerts.live))
                if time.monotonic() - self._checked >= STREAM_CHECK_S:
                    await self._close_replaced()
            except Exception:
                log.exception("following alerts failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def _push_new(self, live: list[Live]) -> None:
        fresh = [a for a in live if self._known.get(a.id, 0) < a.version]
        self._known = {a.id: a.version for a in live}
        if not fresh or not self.streams:
            return
        signed = {s.alert_id: s for s in await self.run(self.alerts.signed, [a.id for a in fresh])}
        for alert in fresh:
            if alert.id not in signed:
                continue  # gone between the two reads
            for queue, held in list(self.streams.items()):
                if alert.reaches(held.region):
                    queue.put_nowait(signed[alert.id])

    async def _close_replaced(self) -> None:
        """End the streams of this replica that a newer stream of their node replaced (on any
        replica), or whose node or key was revoked since they opened."""
        self._checked = time.monotonic()
        if not self.streams:
            return
        keys = {held.node_id: held.key_id for held in self.streams.values()}
        current = await self.run(self.alerts.fleet.current_streams, keys)
        for queue, held in list(self.streams.items()):
            if current.get(held.node_id) != held.stream_id:
                queue.put_nowait(None)

    async def stream(self, node_id: str, region: str, key_id: str) -> AsyncIterator[str]:
        """Server-sent events: every pending alert now, then each new version as it comes.
        One per node: a newer stream of the node ends this one, and so does revoking it."""
        self._ensure_running()
        stream_id = await self.run(self.alerts.fleet.open_stream, node_id)
        for queue, held in list(self.streams.items()):
            if held.node_id == node_id:
                queue.put_nowait(None)  # replaced here at once; elsewhere at the next check
        queue: asyncio.Queue[SignedAlert | None] = asyncio.Queue()
        self.streams[queue] = _Stream(node_id, region, key_id, stream_id)
        try:
            for signed in await self.run(self.alerts.pending_for, node_id, region):
                queue.put_nowait(signed)
            yield ": connected\n\n"
            while True:
                try:
                    signed = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if signed is None:
                    return  # replaced or revoked
                yield f"event: alert\nid: {signed.alert_id}:{signed.version}\n"
                yield f"data: {signed.model_dump_json()}\n\n"
                await self.run(
                    self.alerts.mark_sent, node_id, [(signed.alert_id, signed.version)], "stream"
                )
        finally:
            self.streams.pop(queue, None)
