"""Refusing work for a deployment that cannot take it yet: 503 with Retry-After, not a hang.

Serve queues a call to a deployment with no running replica until one starts: a minute for an
embedder loading, forever for one that cannot load. A caller (a lilEVY node on a flaky
uplink) is better served by an immediate 503 that says when to come back.
"""

from __future__ import annotations

import asyncio
import time

from bigevy.errors import Unavailable
from bigevy.gateway.service import DeploymentState, DeploymentView

#: What each deployment is, in the words of an error message.
WHAT = {"embedder": "the embedding model", "knowledge": "the knowledge base"}


class DeploymentGate:
    def __init__(self, view: DeploymentView | None, retry_after: int, ttl_s: float = 1.0) -> None:
        self.view = view
        self.retry_after = retry_after
        self.ttl_s = ttl_s
        self._seen: dict[str, DeploymentState] = {}
        self._seen_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _states(self) -> dict[str, DeploymentState]:
        """Serve's status, asked at most once per `ttl_s` (a controller round trip)."""
        async with self._lock:
            if self.view is not None and time.monotonic() - self._seen_at > self.ttl_s:
                self._seen = await asyncio.to_thread(self.view.deployments)
                self._seen_at = time.monotonic()
            return self._seen

    async def require(self, *deployments: str) -> None:
        states = await self._states()
        for name in deployments:
            state = states.get(name)
            if state is None or state.replicas.get("RUNNING"):
                continue  # in-process use, or serving
            failed = state.model_state == "failed"
            raise Unavailable(
                f"{WHAT.get(name, name)} {'failed to start' if failed else 'is still loading'}"
                f"; retry in {self.retry_after} s",
                code=f"{name}_{'failed' if failed else 'loading'}",
                retry_after=self.retry_after,
            )
