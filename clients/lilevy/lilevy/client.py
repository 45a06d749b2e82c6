"""The lilEVY side of bigEVY's HTTP API: enrol, heartbeat, escalate a question.

Written for a Raspberry-Pi-class box on a flaky GSM uplink: only httpx and the standard
library (no pydantic, no numpy), every call retried with capped exponential backoff and full
jitter when the failure is the network's or bigEVY's busy signal (never for a request bigEVY
refused), and, with an `Outbox`, a heartbeat or question made while the uplink is down is
kept on disk and delivered later, exactly once (the same Idempotency-Key on every try).

    async with EdgeClient("https://bigevy.example", outbox=Outbox("outbox.db")) as edge:
        enrolled = await edge.enroll(token, NodeDescription(name="kisumu-clinic"))
        reply = await edge.heartbeat(HeartbeatStatus(battery_percent=80), queue_if_offline=True)
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from lilevy.errors import (
    EdgeError,
    RateLimited,
    Unavailable,
    error_from_exception,
    error_from_response,
)
from lilevy.outbox import DeliveryReport, Outbox

if TYPE_CHECKING:
    from lilevy.metrics import NodeMetrics

ESCALATE_PATH = "/v1/evy/query"
_T = TypeVar("_T")


def _from_json(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """A wire dataclass from JSON, ignoring fields a newer server added."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


# -- wire shapes -----------------------------------------------------------------------------
# Hand-written mirrors of bigEVY's wire models, kept free of pydantic; bigEVY's
# tests/integration/test_edge.py checks them against the server's OpenAPI document.


@dataclass
class NodeDescription:
    """What a node says about itself when it enrols."""

    name: str
    region: str = "global"
    location: str = ""
    phone_number: str = ""
    hardware: str = ""
    model: str = ""
    storage_mb: int = 0
    software_version: str = ""


@dataclass
class Enrollment:
    node_id: str
    node_key: str
    signing_public_key: str
    heartbeat_interval_s: int


@dataclass
class HeartbeatStatus:
    """A node's health, sent with every heartbeat (counts are since the last one)."""

    battery_percent: float | None = None
    power_source: Literal["mains", "solar", "battery", "unknown"] = "unknown"
    uptime_s: float = 0.0
    sms_in: int = 0
    sms_out: int = 0
    #: Of `sms_in`, those the node answered from its FAQ entries (never escalated).
    faq_answers: int = 0
    queue_depth: int = 0
    model_version: str = ""
    knowledge_revision: int | None = None
    free_storage_mb: float | None = None
    connectivity: list[str] = field(default_factory=list)
    #: When these figures were taken: a heartbeat delivered late from the outbox keeps it.
    measured_at: float = field(default_factory=time.time)


@dataclass
class Directive:
    """Something bigEVY wants the node to do, e.g. `knowledge_update`."""

    type: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeartbeatReply:
    node_id: str
    state: str
    server_time: float
    heartbeat_interval_s: int
    directives: list[Directive] = field(default_factory=list)
    #: Signed alerts not yet acknowledged: `lilevy.alerts.take` each one.
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeartbeatReply:
        reply = _from_json(cls, data)
        reply.directives = [_from_json(Directive, d) for d in data.get("directives", [])]
        return reply


@dataclass
class Queued:
    """The call could not reach bigEVY and waits in the outbox under this idempotency key."""

    id: str
    kind: str
    reason: EdgeError


@dataclass
class Reply:
    status: int
    body: Any
    #: bigEVY answered from its store of replies: the request had been done before.
    replayed: bool = False


@dataclass
class Attempt:
    """One HTTP try, for whoever counts them (the simulator): `outcome` is the status code or
    `connection_error` / `timeout`."""

    kind: str
    method: str
    path: str
    outcome: str
    seconds: float


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded tries; the wait before try n+1 is uniform in [0, min(cap, base * 2**n)] (full
    jitter, so a fleet coming back after an outage does not knock all at once), or at least
    the server's Retry-After. A Retry-After above `cap_s` ends the tries at once."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None to give up."""
        backoff = rng.uniform(0.0, min(self.cap_s, self.base_s * 2**retry))
        if retry_after is None:
            return backoff
        if retry_after > self.cap_s:
            return None
        return retry_after + rng.uniform(0.0, self.base_s)


class EdgeClient:
    """An async client of bigEVY for one node (or an operator's key, for `request`).

    `http`: a shared `httpx.AsyncClient` (the simulator runs hundreds of nodes on one); it
    is not closed by this client. `outbox`: an `Outbox` or the path of its SQLite file.
    `on_attempt`: called after every HTTP try, e.g. to count statuses. `metrics`: where
    heartbeats, escalations, outbox deliveries, syncs and alerts are counted (shared by all
    the clients of a simulated fleet).
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str | None = None,
        node_id: str | None = None,
        outbox: Outbox | str | Path | None = None,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 30.0,
        escalate_timeout: float = 300.0,
        on_attempt: Callable[[Attempt], None] | None = None,
        rng: random.Random | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.node_id = node_id
        self.outbox = Outbox(outbox) if isinstance(outbox, str | Path) else outbox
        self._owns_outbox = isinstance(outbox, str | Path)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient()
        self.retry = retry
        self.timeout = timeout
        self.escalate_timeout = escalate_timeout
        self.on_attempt = on_attempt
        self.rng = rng or random.Random()
        self.metrics = metrics
        self._flushing = asyncio.Lock()

    async def __aenter__(self) -> EdgeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        if self._owns_outbox and self.outbox is not None:
            self.outbox.close()

    # -- the API ------------------------------------------------------------------------------

    async def enroll(self, token: str, description: NodeDescription) -> Enrollment:
        """Trade a one-time token for this node's id and key (kept on the client).

        Retried only when bigEVY surely did not act (refused connection, 429, 503): a token
        spent by a request whose reply was lost cannot be spent again."""
        body = {"token": token, **dataclasses.asdict(description)}
        reply = await self.request(
            "POST", "/v1/nodes/enroll", json=body, kind="enroll", safe_to_resend=False
        )
        enrollment = _from_json(Enrollment, reply.body)
        self.node_id, self.key = enrollment.node_id, enrollment.node_key
        return enrollment

    async def heartbeat(
        self,
        status: HeartbeatStatus | Mapping[str, Any] | None = None,
        *,
        queue_if_offline: bool = False,
        idempotency_key: str | None = None,
    ) -> HeartbeatReply | Queued:
        """Report health; the reply's `directives` say what to do next. Stored once by bigEVY
        however often it is retried (one Idempotency-Key per heartbeat)."""
        node_id = self._require_node(queue_if_offline)
        if isinstance(status, HeartbeatStatus):
            body = dataclasses.asdict(status)
        else:
            body = dict(status or {})
        body.setdefault("measured_at", time.time())
        path = f"/v1/nodes/{node_id}/heartbeat"
        key = idempotency_key or str(uuid.uuid4())
        try:
            reply = await self.request(
                "POST", path, json=body, idempotency_key=key, kind="heartbeat"
            )
        except EdgeError as exc:
            return self._queue_or_raise(exc, queue_if_offline, "heartbeat", path, body, key)
        self._count("heartbeat", "sent")
        return HeartbeatReply.from_json(reply.body)

    async def escalate(
        self,
        message: str,
        *,
        language: str = "en",
        region: str | None = None,
        max_sms_segments: int = 1,
        idempotency_key: str | None = None,
        queue_if_offline: bool = False,
    ) -> dict[str, Any] | Queued:
        """Ask bigEVY a question the node could not answer: the EvyAnswer JSON (`sms` is the
        reply to send). A retry with the same Idempotency-Key gets the first answer."""
        node_id = self._require_node(queue_if_offline)
        body: dict[str, Any] = {
            "node_id": node_id,
            "message": message,
            "language": language,
            "max_sms_segments": max_sms_segments,
        }
        if region is not None:
            body["region"] = region
        key = idempotency_key or str(uuid.uuid4())
        started = time.perf_counter()
        try:
            reply = await self.request(
                "POST", ESCALATE_PATH, json=body, idempotency_key=key, kind="escalation"
            )
        except EdgeError as exc:
            return self._queue_or_raise(
                exc, queue_if_offline, "escalation", ESCALATE_PATH, body, key
            )
        self._count("escalation", "answered", time.perf_counter() - started)
        return dict(reply.body)

    async def node(self, history: int = 20) -> dict[str, Any]:
        """This node as bigEVY sees it (state, last status, recent heartbeats)."""
        node_id = self._require_node()
        reply = await self.request(
            "GET", f"/v1/nodes/{node_id}", params={"history": history}, kind="node"
        )
        return dict(reply.body)

    async def flush(self) -> DeliveryReport:
        """Deliver the outbox, oldest first; one delivery at a time per client."""
        if self.outbox is None:
            raise ValueError("this client has no outbox")
        async with self._flushing:
            report = await self.outbox.deliver(self)
        if self.metrics is not None:
            self.metrics.delivered(report)
        return report

    # -- the transport ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        kind: str = "other",
        retry: bool = True,
        safe_to_resend: bool = True,
    ) -> Reply:
        """One call with retries; raises the `EdgeError` of the last try.

        Retried: transport errors and timeouts, 429 and 503 (502/504 too), as long as
        `safe_to_resend` or bigEVY surely never saw the request."""
        headers = {}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        seconds = self.escalate_timeout if kind == "escalation" else self.timeout
        timeout = httpx.Timeout(seconds, connect=min(seconds, 15.0))
        url = self.base_url + path
        tries = self.retry.attempts if retry else 1
        for attempt in range(tries):
            started = time.perf_counter()
            try:
                response = await self.http.request(
                    method, url, json=json, params=params, headers=headers, timeout=timeout
                )
            except httpx.UnsupportedProtocol as exc:
                raise EdgeError(f"bad bigEVY URL {url!r}: {exc}") from exc
            except httpx.TransportError as exc:
                error: EdgeError = error_from_exception(exc)
                self._observe(kind, method, path, error.code or "connection_error", started)
                unsent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                retriable = safe_to_resend or unsent
            else:
                self._observe(kind, method, path, str(response.status_code), started)
                if response.is_success:
                    body = response.json() if response.content else None
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                    return Reply(response.status_code, body, replayed)
                error = error_from_response(response)
                retriable = isinstance(error, RateLimited) or (
                    isinstance(error, Unavailable)
                    and (safe_to_resend or response.status_code == 503)
                )
            if not retriable or attempt + 1 >= tries:
                raise error
            delay = self.retry.delay(attempt, error.retry_after, self.rng)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, kind: str, method: str, path: str, outcome: str, started: float) -> None:
        if self.on_attempt is not None:
            self.on_attempt(Attempt(kind, method, path, outcome, time.perf_counter() - started))

    def _queue_or_raise(
        self,
        exc: EdgeError,
        queue_if_offline: bool,
        kind: Literal["heartbeat", "escalation"],
        path: str,
        body: dict[str, Any],
        key: str,
    ) -> Queued:
        """Keep a call bigEVY could not take now (same key: a try that did land is not
        stored twice); anything bigEVY refused is raised."""
        if not (queue_if_offline and exc.transient and self.outbox is not None):
            self._count(kind, "failed")
            raise exc
        queued = Queued(self.outbox.put(kind, path, body, idempotency_key=key), kind, exc)
        self._count(kind, "queued")
        return queued

    def _count(
        self,
        kind: Literal["heartbeat", "escalation"],
        outcome: Literal["sent", "answered", "queued", "failed"],
        seconds: float | None = None,
    ) -> None:
        if self.metrics is None:
            return
        if kind == "heartbeat":
            self.metrics.heartbeat(outcome)  # type: ignore[arg-type]
        else:
            self.metrics.escalation(outcome, seconds)  # type: ignore[arg-type]

    def _require_node(self, queue_if_offline: bool = False) -> str:
        if not self.node_id or not self.key:
            raise ValueError("this client has no node yet: enroll first, or pass node_id and key")
        if queue_if_offline and self.outbox is None:
            raise ValueError("queue_if_offline needs an outbox")
        return self.node_id
