"""Refusing work for a deployment that cannot take it yet: 503 with Retry-After, not a hang.

Serve queues a call to a deployment with no running replica until one starts: a minute for an
embedder loading, forever for one that cannot load. A caller (a lilEVY node on a flaky
uplink) is better served by an immediate 503 that says when to come back.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bigevy.errors import Unavailable
from bigevy.gateway.service import DeploymentState, DeploymentView

log = logging.getLogger(__name__)

#: What each deployment is, in the words of an error message.
WHAT = {"embedder": "the embedding model", "knowledge": "the knowledge base"}


class DeploymentGate:
    """Serve's deployment states, read without making a request that may go in wait for them.

    `serve.status()` is a controller round trip that costs ~40 ms of the gateway's CPU (and
    holds its GIL). A request reads the last answer; once that is older than its time to live
    the request starts one refresh in the background (stale-while-revalidate). A request the
    stale answer lets in does not wait for it. One it would refuse waits up to `refusal_wait_s`
    for the fresh answer: a node retrying after Retry-After, once the replica is up, gets in on
    that retry. An idle gateway asks nothing. While a deployment cannot serve, the answer lives
    `ttl_s`; once all serve it lives `healthy_ttl_s`: Serve itself routes around a replica
    that fails later.
    """

    def __init__(
        self,
        view: DeploymentView | None,
        retry_after: int,
        ttl_s: float = 1.0,
        healthy_ttl_s: float = 15.0,
        refusal_wait_s: float = 1.0,
    ) -> None:
        self.view = view
        self.retry_after = retry_after
        self.ttl_s = ttl_s
        self.healthy_ttl_s = healthy_ttl_s
        self.refusal_wait_s = refusal_wait_s
        self._ttl = ttl_s
        self._seen: dict[str, DeploymentState] | None = None
        self._seen_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    async def _fetch(self) -> None:
        assert self.view is not None
        try:
            seen = await asyncio.to_thread(self.view.deployments)
            serving = all(state.replicas.get("RUNNING") for state in seen.values())
            self._seen, self._seen_at = seen, time.monotonic()
            self._ttl = self.healthy_ttl_s if serving else self.ttl_s
        except Exception:
            if self._seen is None:
                raise  # the waiting first request reports it
            log.warning("serve.status() failed; keeping the last answer", exc_info=True)
            # Next try after ttl_s, not at the next request: a failing controller must not
            # cost a status call per request.
            self._seen_at, self._ttl = time.monotonic(), self.ttl_s
        finally:
            self._refresh = None

    async def _states(self) -> dict[str, DeploymentState]:
        if self.view is None:
            return {}  # in-process use: nothing to wait for
        if self._refresh is None and time.monotonic() - self._seen_at > self._ttl:
            self._refresh = asyncio.create_task(self._fetch())
        if self._seen is None:
            assert self._refresh is not None
            await asyncio.shield(self._refresh)  # the first answer: nothing older to serve
        return self._seen or {}

    async def require(self, *deployments: str) -> None:
        refusal = self._refusal(await self._states(), deployments)
        refresh = self._refresh
        if refusal is not None and refresh is not None:
            # The answer that refuses is stale and a fresh one is on its way: a refusal is
            # worth the wait (~40 ms), a slow controller is not.
            try:
                await asyncio.wait_for(asyncio.shield(refresh), self.refusal_wait_s)
            except TimeoutError:
                raise refusal from None
            refusal = self._refusal(self._seen or {}, deployments)
        if refusal is not None:
            raise refusal

    def _refusal(
        self, states: dict[str, DeploymentState], deployments: tuple[str, ...]
    ) -> Unavailable | None:
        for name in deployments:
            state = states.get(name)
            if state is None or state.replicas.get("RUNNING"):
                continue  # in-process use, or serving
            failed = state.model_state == "failed"
            return Unavailable(
                f"{WHAT.get(name, name)} {'failed to start' if failed else 'is still loading'}"
                f"; retry in {self.retry_after} s",
                code=f"{name}_{'failed' if failed else 'loading'}",
                retry_after=self.retry_after,
            )
        return None
