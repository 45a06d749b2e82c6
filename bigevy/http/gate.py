"""Refusing work for a deployment that cannot take it yet: 503 with Retry-After, not a hang.

Serve queues a call to a deployment with no running replica until one starts: a minute for an
embedder loading, forever for one that cannot load. A caller (a lilEVY node on a flaky
uplink) is better served by an immediate 503 that says when to come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from bigevy.errors import DeploymentFailed, DeploymentLoading, Unavailable
from bigevy.http.serve_status import DeploymentState, DeploymentView

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.clock = clock
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
            self._seen, self._seen_at = seen, self.clock()
            self._ttl = self.healthy_ttl_s if serving else self.ttl_s
        except Exception:
            if self._seen is None:
                raise  # the waiting first request reports it
            log.warning("serve.status() failed; keeping the last answer", exc_info=True)
            # Next try after ttl_s, not at the next request: a failing controller must not
            # cost a status call per request.
            self._seen_at, self._ttl = self.clock(), self.ttl_s
        finally:
            self._refresh = None

    async def _states(self) -> dict[str, DeploymentState]:
        if self.view is None:
            return {}  # in-process use: nothing to wait for
        if self._refresh is None and self.clock() - self._seen_at > self._ttl:
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
            what = WHAT.get(name, name)
            if state.model_state == "failed":
                return DeploymentFailed(
                    f"{what} failed to start; retry in {self.retry_after} s",
                    code=f"{name}_failed",
                    retry_after=self.retry_after,
                )
            return DeploymentLoading(
                f"{what} is still loading; retry in {self.retry_after} s",
                code=f"{name}_loading",
                retry_after=self.retry_after,
            )
        return None


def needs(*deployments: str) -> Any:
    """A route dependency: 503 + Retry-After while one of `deployments` cannot serve."""

    async def check(request: Request) -> None:
        await request.app.state.services.gate.require(*deployments)

    return Depends(check)


async def _searchable(request: Request) -> None:
    services = request.app.state.services
    # A search embeds its query with the embedder unless the knowledge deployment does.
    local = services.embeds_queries_locally
    await services.gate.require(*(("knowledge",) if local else ("embedder", "knowledge")))


#: Documents are embedded by the embedder, and written by the knowledge deployment.
WRITING = needs("embedder", "knowledge")
SEARCHING = Depends(_searchable)
