"""The readiness gate in front of knowledge routes: a request let in never waits for Serve's status.

Serve's status is the seam to Ray here, so the view is a scripted stand-in for
`serve.status()` (tests/test_serve_ops.py runs the gate against a real Serve app).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from bigevy.errors import Unavailable
from bigevy.gateway.gate import DeploymentGate
from bigevy.gateway.service import DeploymentState

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
        view = ScriptedStatus(LOADING)
        gate = DeploymentGate(view, retry_after=7, ttl_s=0.05, healthy_ttl_s=60, refusal_wait_s=0.1)
        with pytest.raises(Unavailable) as refused:
            await gate.require("embedder")  # the first request waits for the first answer
        assert refused.value.code == "embedder_loading" and refused.value.retry_after == 7

        view.state = RUNNING
        view.released.clear()  # the controller is slow from now on
        await asyncio.sleep(0.06)
        # Stale answer, refresh started: a request it refuses waits for the refresh only
        # refusal_wait_s, then is refused rather than held by the slow controller.
        with pytest.raises(Unavailable):
            await asyncio.wait_for(gate.require("embedder"), 1)
        view.released.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            try:
                await gate.require("embedder")
                break
            except Unavailable:
                continue
        else:
            raise AssertionError("the embedder was never let through once running")

        # Everything serves: the answer now lives healthy_ttl_s, requests cost no status call.
        calls = view.calls
        for _ in range(50):
            await gate.require("embedder")
            await asyncio.sleep(0.002)
        assert view.calls == calls

    asyncio.run(scenario())


def test_a_retry_after_the_replica_came_up_gets_in_on_that_retry() -> None:
    async def scenario() -> None:
        view = ScriptedStatus(LOADING)
        gate = DeploymentGate(view, retry_after=1, ttl_s=0.05)
        with pytest.raises(Unavailable):
            await gate.require("embedder")
        view.state = RUNNING  # the replica comes up while the node waits out Retry-After
        await asyncio.sleep(0.06)
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
        view = ScriptedStatus(RUNNING)
        gate = DeploymentGate(view, retry_after=3, ttl_s=1.0, healthy_ttl_s=0.05)
        await gate.require("embedder")
        view.failing = True
        await asyncio.sleep(0.06)
        calls = view.calls
        for _ in range(50):  # ~0.1 s of requests: within ttl_s of the first failed refresh
            await gate.require("embedder")  # the last answer (running) still lets them in
            await asyncio.sleep(0.002)
        assert view.calls == calls + 1
        await asyncio.sleep(1.05)
        await gate.require("embedder")  # ttl_s has passed: this one starts the next try
        for _ in range(100):
            if view.calls > calls + 1:
                break
            await asyncio.sleep(0.01)
        assert view.calls == calls + 2

    asyncio.run(scenario())
