"""The readiness gate in front of knowledge routes: a request let in never waits for Serve's status.

Serve's status is the seam to Ray here, so the view is a scripted stand-in for
`serve.status()` (tests/integration/test_serve_ops.py runs the gate against a real Serve app).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from bigevy.errors import Unavailable
from bigevy.http.gate import DeploymentGate
from bigevy.http.serve_status import DeploymentState
from tests.support.waiting import FakeClock, until

LOADING = DeploymentState(status="DEPLOYING", replicas={"STARTING": 1})
RUNNING = DeploymentState(status="HEALTHY", replicas={"RUNNING": 1})


class ScriptedStatus:
    """Answers what the test sets; clearing `released` makes answers block, like a slow
    controller."""

    def __init__(self, state: DeploymentState) -> None:
        self.state = state
        self.calls = 0
        self.released = threading.Event()
        self.released.set()

        self.failing = False

    def deployments(self) -> dict[str, DeploymentState]:
        self.calls += 1
        self.released.wait(10)
        if self.failing:
            raise ConnectionError("controller unreachable")
        return {"embedder": self.state}


def test_loading_refuses_then_serves_without_waiting_for_a_slow_status() -> None:
    async def scenario() -> None:
        view, clock = ScriptedStatus(LOADING), FakeClock()
        gate = DeploymentGate(
            view, retry_after=7, ttl_s=0.05, healthy_ttl_s=60, refusal_wait_s=0.1, clock=clock
        )
        with pytest.raises(Unavailable) as refused:
            await gate.require("embedder")  # the first request waits for the first answer
        assert refused.value.code == "embedder_loading" and refused.value.retry_after == 7

        view.state = RUNNING
        view.released.clear()  # the controller is slow from now on
        clock.advance(0.06)
        # Stale answer, refresh started: a request it refuses waits for the refresh only
        # refusal_wait_s, then is refused rather than held by the slow controller.
        with pytest.raises(Unavailable):
            await asyncio.wait_for(gate.require("embedder"), 5)
        view.released.set()
        await until(lambda: gate._refresh is None, "the refresh to land")
        await gate.require("embedder")  # let through once running

        # Everything serves: the answer now lives healthy_ttl_s, requests cost no status call.
        calls = view.calls
        for _ in range(50):
            await gate.require("embedder")
            clock.advance(0.5)
        assert view.calls == calls

    asyncio.run(scenario())


def test_a_retry_after_the_replica_came_up_gets_in_on_that_retry() -> None:
    async def scenario() -> None:
        view, clock = ScriptedStatus(LOADING), FakeClock()
        gate = DeploymentGate(view, retry_after=1, ttl_s=0.05, clock=clock)
        with pytest.raises(Unavailable):
            await gate.require("embedder")
        view.state = RUNNING  # the replica comes up while the node waits out Retry-After
        clock.advance(1.0)
        await gate.require("embedder")  # the stale "loading" is checked, not served
        calls = view.calls
        await gate.require("embedder")  # and serving is believed without asking again
        assert view.calls == calls

    asyncio.run(scenario())


def test_a_failed_deployment_is_named_in_the_refusal() -> None:
    async def scenario() -> None:
        gate = DeploymentGate(ScriptedStatus(DeploymentState("DEPLOY_FAILED", {})), retry_after=3)
        with pytest.raises(Unavailable) as refused:
            await gate.require("embedder")
        assert refused.value.code == "embedder_failed"
        assert "the embedding model failed to start" in str(refused.value)

    asyncio.run(scenario())


def test_a_failing_status_keeps_the_last_answer_and_is_retried_once_per_ttl() -> None:
    async def scenario() -> None:
        view, clock = ScriptedStatus(RUNNING), FakeClock()
        gate = DeploymentGate(view, retry_after=3, ttl_s=1.0, healthy_ttl_s=0.05, clock=clock)
        await gate.require("embedder")
        view.failing = True
        clock.advance(0.06)
        calls = view.calls
        await gate.require("embedder")  # stale: starts one refresh, which fails
        await until(lambda: gate._refresh is None, "the failed refresh")
        for _ in range(50):  # within ttl_s of the failed refresh
            await gate.require("embedder")  # the last answer (running) still lets them in
            clock.advance(0.01)
        assert view.calls == calls + 1
        clock.advance(1.0)
        await gate.require("embedder")  # ttl_s has passed: this one starts the next try
        await until(lambda: view.calls == calls + 2, "the next try")
        await until(lambda: gate._refresh is None, "the next try to end")
        assert view.calls == calls + 2

    asyncio.run(scenario())
