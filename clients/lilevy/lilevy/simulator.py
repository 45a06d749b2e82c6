"""A simulated lilEVY fleet against a real bigEVY: what N nodes do to it, in numbers.

Each node is enrolled like a real one (a one-time token from the admin key, then the edge
client), heartbeats on a fixed cadence with plausible, drifting vitals, and escalates SMS
questions from `questions.txt` as a Poisson process (exponential gaps around
`question_every_s`), open loop: a slow answer does not slow the questions down, as real SMS
users do not wait for each other. Everything runs on one event loop and one shared
`httpx.AsyncClient`; every node has its own outbox (calls bigEVY could not take are queued
there and delivered after the next acknowledged heartbeat). With a metrics port, the fleet's
`lilevy.metrics` (added up over the nodes) are served for Prometheus while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import httpx

from lilevy.client import (
    Attempt,
    EdgeClient,
    Enrollment,
    HeartbeatReply,
    HeartbeatStatus,
    NodeDescription,
    Queued,
    RetryPolicy,
)
from lilevy.errors import EdgeError
from lilevy.knowledge import EdgeKnowledge, PackageRejected
from lilevy.metrics import MetricsServer, NodeMetrics
from lilevy.outbox import DeliveryReport, Outbox
from lilevy.sync import sync_knowledge
from lilevy.updates import Updater

#: Package data: found in an installed wheel and in an editable install alike.
QUESTIONS_FILE = resources.files("lilevy") / "questions.txt"
KINDS = ("enroll", "heartbeat", "escalation", "sync")
#: A few common words of each language, space-separated.
_WORDS = {
    "fr": "est que faut mon mes comment où quand quel pour il va",
    "es": "cuándo cuál dónde cómo mi está mañana qué mis el",
    "pt": "quando qual onde como meu filho faço vai devo o",
    "sw": "ni gani wangu nifanye nini lini wapi kesho ya cha saa msaada",
}


def _reworded(question: str, rng: random.Random) -> str:
    """The same question as another person might type it."""
    text = question
    if rng.random() < 0.5:
        text = text.lower()
    if rng.random() < 0.5:
        text = text.rstrip("?!. ")
    if rng.random() < 0.3:
        text = f"Hi, {text}"
    return text


def load_questions(path: Path | Traversable | None = None) -> list[str]:
    """The SMS questions, one a line (blank lines skipped)."""
    text = (path or QUESTIONS_FILE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def guess_language(text: str) -> str:
    """A crude guess from common words; enough to tag a simulated SMS."""
    words = {w.strip("¿?¡!.,'").lower() for w in text.split()}
    best, hits = "en", 0
    for language, common in _WORDS.items():
        found = len(words & set(common.split()))
        if found > hits:
            best, hits = language, found
    return best


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class KindStats:
    """Calls of one kind: as a node saw them (retries included in the latency)."""

    ok: int = 0
    failed: int = 0
    queued: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def p(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)


@dataclass
class Progress:
    phase: str
    done: float
    total: float
    heartbeats: int
    escalations: int
    failures: int


@dataclass
class SimulationReport:
    nodes: int
    node_ids: list[str]
    duration_s: float
    kinds: dict[str, KindStats]
    #: Every HTTP try by outcome: status code, `connection_error` or `timeout`.
    responses: Counter[str]
    #: Calls that failed for good (after retries, not queued), by outcome.
    failures: Counter[str]
    #: Heartbeats bigEVY answered 2xx, live or from an outbox: each must be one stored row.
    acknowledged_heartbeats: int
    outbox_depth: int
    dead_letters: int
    #: Questions a node answered from an FAQ entry it had synced (never escalated).
    answered_locally: int = 0
    #: Per minute of the run: (questions asked, of them answered locally).
    timeline: list[tuple[int, int]] = field(default_factory=list)
    #: Knowledge packages applied by the nodes (with `sync_every_s`).
    packages_applied: int = 0
    #: Node restarts simulated (with `restart_probability`).
    restarts: int = 0
    #: Nodes whose store, after a last sync, differs from a full snapshot made for them.
    out_of_sync: list[str] = field(default_factory=list)
    #: With `rollout_artifact`: how the rollout to the simulated fleet went.
    rollout: RolloutOutcome | None = None

    @property
    def heartbeats_per_s(self) -> float:
        return self.acknowledged_heartbeats / self.duration_s if self.duration_s else 0.0

    @property
    def server_errors(self) -> int:
        """5xx replies seen, retried ones included."""
        return sum(n for k, n in self.responses.items() if k.isdigit() and int(k) >= 500)


@dataclass
class RolloutOutcome:
    """A rollout run against the simulated fleet, as bigEVY saw it at the end."""

    rollout_id: str
    state: str
    #: Index of the phase it reached (paused in, or last).
    phase: int
    #: Seconds from its creation until it paused, completed or rolled back (None: it did not).
    settled_after_s: float | None
    counts: dict[str, int]
    #: Nodes set to fail their self-test, and of them those offered the artifact.
    failing_nodes: int
    #: Nodes of a phase after the one reached that were offered the artifact anyway (0).
    offered_beyond: int
    #: What the nodes reported, by status.
    reported: Counter[str] = field(default_factory=Counter)


class _Stats:
    def __init__(self) -> None:
        self.kinds = {kind: KindStats() for kind in KINDS}
        self.responses: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.acknowledged_heartbeats = 0
        self.answered_locally = 0
        self.packages_applied = 0
        self.restarts = 0
        self.timeline: list[list[int]] = []

    def asked(self, minute: int, locally: bool) -> None:
        while len(self.timeline) <= minute:
            self.timeline.append([0, 0])
        self.timeline[minute][0] += 1
        self.timeline[minute][1] += int(locally)
        self.answered_locally += int(locally)

    def attempt(self, attempt: Attempt) -> None:
        self.responses[attempt.outcome] += 1

    def fail(self, kind: str, error: EdgeError) -> None:
        self.kinds[kind].failed += 1
        self.failures[str(error.status or error.code or "error")] += 1

    def delivered(self, report: DeliveryReport) -> None:
        for item in report.delivered:
            if item.entry.kind == "heartbeat":
                self.acknowledged_heartbeats += 1
            self.kinds[item.entry.kind].ok += 1
        for letter in report.dead_lettered:
            self.kinds[letter.entry.kind].failed += 1
            self.failures[str(letter.status)] += 1


class _Node:
    """One simulated lilEVY: its vitals drift from beat to beat."""

    def __init__(
        self,
        client: EdgeClient,
        rng: random.Random,
        region: str,
        knowledge: EdgeKnowledge | None = None,
    ) -> None:
        self.client = client
        self.knowledge = knowledge  # with sync: what the node answers from itself
        self.rng = rng
        self.region = region
        self.power = rng.choice(["solar", "solar", "mains", "battery"])
        self.battery = rng.uniform(35.0, 100.0)
        self.boot_uptime = rng.uniform(600.0, 7 * 86400.0)
        self.started = time.monotonic()
        self.free_mb = rng.uniform(2000.0, 28000.0)
        self.revision = 0
        self.asked = 0  # questions since the last heartbeat
        self.answered_segments = 0
        self.faq_answered = 0  # of `asked`, those answered from an FAQ entry
        self.flushing: asyncio.Task[None] | None = None
        self.updater: Updater | None = None
        self.updating: asyncio.Task[None] | None = None

    def status(self) -> HeartbeatStatus:
        drift = {"solar": 0.4, "mains": 1.0, "battery": -0.6}[self.power]
        self.battery = min(100.0, max(3.0, self.battery + drift + self.rng.gauss(0, 0.8)))
        self.free_mb = max(50.0, self.free_mb - self.rng.uniform(0, 2))
        local = self.rng.randint(0, 3)  # questions the node answered with its own model
        if self.client.metrics is not None:
            self.client.metrics.sms_received(local)
            self.client.metrics.answered_locally("model", local)
        sms_in, sms_out = local + self.asked, local + self.answered_segments
        faq_answers = self.faq_answered
        self.asked = self.answered_segments = self.faq_answered = 0
        depth = self.client.outbox.depth() if self.client.outbox else 0
        return HeartbeatStatus(
            battery_percent=round(self.battery, 1),
            power_source=self.power,  # type: ignore[arg-type]
            uptime_s=round(self.boot_uptime + time.monotonic() - self.started, 1),
            sms_in=sms_in,
            sms_out=sms_out,
            faq_answers=faq_answers,
            queue_depth=depth,
            model_version=(self.updater and self.updater.version("model")) or "smollm2-135m-q4",
            knowledge_revision=self.revision,
            free_storage_mb=round(self.free_mb, 1),
            connectivity=["sms", "internet"],
        )

    def heard(self, reply: HeartbeatReply) -> None:
        for directive in reply.directives:
            if directive.type == "knowledge_update":
                self.revision = int(directive.detail.get("to_revision", self.revision))


async def _in_sync(node: _Node, box_dir: Path) -> bool:
    """After one more (uncut) sync, the node holds exactly what a snapshot built for it now
    would hold, entry by entry (ids and sha256): nothing lost, nothing stale."""
    if node.knowledge is None:
        return True
    for attempt in range(5):  # knowledge changing meanwhile makes the two differ: again
        if attempt:
            await asyncio.sleep(1.0)
        try:
            await sync_knowledge(node.client, node.knowledge, box_dir / "final")
            reply = await node.client.request(
                "GET", "/v1/sync/manifest", params={"full": "true"}, kind="sync"
            )
        except (EdgeError, PackageRejected):
            continue
        manifest = json.loads(reply.body["manifest"])
        if manifest["to_revision"] != node.knowledge.revision:
            continue
        expected = {e["id"]: e["sha256"] for e in manifest["entries"]}
        return expected == node.knowledge.digests()
    return False


#: Rollout states that end a simulated run.
SETTLED_ROLLOUTS = ("paused", "completed", "rolled_back")


def _simulated_test(fails: bool) -> Callable[[Path, str], Coroutine[Any, Any, str | None]]:
    async def test(path: Path, version: str) -> str | None:
        return f"simulated: {version} does not start on this node" if fails else None

    return test


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


async def _finish(tasks: set[asyncio.Task[None]], fleet: list[_Node], deadline: float) -> None:
    """Wait for `tasks` and the nodes' outbox deliveries (also those they start) until the
    deadline; cancel what is left."""
    while True:
        waiting = {t for t in tasks if not t.done()}
        waiting |= {n.flushing for n in fleet if n.flushing and not n.flushing.done()}
        if not waiting:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            return
        await asyncio.wait(waiting, timeout=left)


@dataclass
class _Simulation:
    """One run of `simulate_async` (the settings are its arguments, see there): the fleet,
    its counters and its tasks in flight, with a method for each phase of the run and each
    part of a node's life."""

    base_url: str
    admin_key: str
    nodes: int
    duration_s: float
    heartbeat_interval_s: float
    question_every_s: float
    region: str
    pool: list[str]
    on_progress: Callable[[Progress], None] | None
    outbox_dir: Path | None
    drain_s: float
    #: The seeded generator: the admin client's retry jitter, then for each node its client's
    #: generator, its phone number and its `_Node`'s generator, drawn in that order.
    rng: random.Random
    retry: RetryPolicy
    sync_every_s: float | None
    cut_probability: float
    restart_probability: float
    zipf: float
    metrics_port: int | None = None
    rollout_artifact: str | None = None
    rollout_phases: tuple[float, ...] = (5, 25, 100)
    fail_share: float = 0.0
    weights: list[float] = field(init=False)
    stats: _Stats = field(init=False, default_factory=_Stats)
    fleet: list[_Node] = field(init=False, default_factory=list)
    inflight: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    started_at: float = field(init=False, default=0.0)
    enrolled: int = field(init=False, default=0)  # attempts done, for the progress callback
    box_dir: Path = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    #: With `metrics_port`: every node's client counts into these, one fleet-wide set.
    metrics: NodeMetrics | None = field(init=False, default=None)
    rollout_id: str | None = field(init=False, default=None)
    rollout_started: float = field(init=False, default=0.0)
    rollout_settled: float | None = field(init=False, default=None)
    failing: set[str] = field(init=False, default_factory=set)
    reported: Counter[str] = field(init=False, default_factory=Counter)

    def __post_init__(self) -> None:
        self.weights = [1.0 / (rank + 1) ** self.zipf for rank in range(len(self.pool))]
        if self.metrics_port is not None:
            self.metrics = NodeMetrics()
            self.metrics.watch_outbox(self._outbox_depth)

    def _outbox_depth(self) -> int:
        """Every node's outbox, added up (read from the metrics server's thread)."""
        return sum(n.client.outbox.depth() for n in list(self.fleet) if n.client.outbox)

    async def run(self) -> SimulationReport:
        """Enrol, load, drain and report; the node stores, the HTTP client and a directory
        made here are released however the run ends."""
        own_dir = self.outbox_dir is None
        if self.outbox_dir is None:
            self.box_dir = Path(tempfile.mkdtemp(prefix="bigevy-sim-"))
        else:
            self.box_dir = Path(self.outbox_dir)
        connections = 2 * self.nodes + 16
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, pool=120.0))
        server: MetricsServer | None = None
        try:
            if self.metrics is not None and self.metrics_port is not None:
                server = self.metrics.serve(self.metrics_port)
            self.fleet = await self._enroll_fleet()
            if self.rollout_artifact:
                await self._start_rollout()
            elapsed = await self._load()
            await self._drain()
            return await self._report(elapsed)
        finally:
            if server is not None:
                server.close()  # before the outboxes it reads are closed
            for node in self.fleet:
                if node.client.outbox:
                    node.client.outbox.close()
                if node.knowledge is not None:
                    node.knowledge.close()
            await self.http.aclose()
            if own_dir:
                shutil.rmtree(self.box_dir, ignore_errors=True)

    # -- enrolment ----------------------------------------------------------------------------

    async def _enroll_fleet(self) -> list[_Node]:
        """The nodes bigEVY enrolled, 16 enrolling at a time."""
        admin = EdgeClient(
            self.base_url, key=self.admin_key, http=self.http, retry=self.retry, rng=self.rng
        )
        gate = asyncio.Semaphore(16)
        enrolled = await asyncio.gather(*(self._enroll(i, admin, gate) for i in range(self.nodes)))
        return [n for n in enrolled if n]

    async def _enroll(self, index: int, admin: EdgeClient, gate: asyncio.Semaphore) -> _Node | None:
        async with gate:
            client = EdgeClient(
                self.base_url,
                http=self.http,
                outbox=Outbox(self.box_dir / f"node-{index:05d}.db"),
                retry=self.retry,
                on_attempt=self.stats.attempt,
                rng=random.Random(self.rng.random()),
                metrics=self.metrics,
            )
            try:
                token = await admin.request(
                    "POST",
                    "/v1/enrollment-tokens",
                    json={"region": self.region, "note": "fleet simulator"},
                )
                started = time.perf_counter()
                # The phone number is drawn only once the token came back, as the order of
                # the draws from `rng` is what a seed replays.
                enrolment = await client.enroll(token.body["token"], self._description(index))
            except EdgeError as exc:
                self.stats.fail("enroll", exc)
                client.outbox.close()  # type: ignore[union-attr]
                return None
            finally:
                self.enrolled += 1
                if self.on_progress:
                    self.on_progress(Progress("enrolling", self.enrolled, self.nodes, 0, 0, 0))
            self.stats.kinds["enroll"].ok += 1
            self.stats.kinds["enroll"].latencies_ms.append((time.perf_counter() - started) * 1e3)
            return self._node(index, client, enrolment)

    def _description(self, index: int) -> NodeDescription:
        """What node `index` tells bigEVY about itself (its phone number is a draw)."""
        return NodeDescription(
            name=f"sim-{self.region.lower()}-{index:04d}",
            region=self.region,
            location=f"simulated site {index}",
            phone_number=f"+254 7{self.rng.randint(10_000_000, 99_999_999)}",
            hardware="Raspberry Pi 4 + SIM800 GSM modem",
            model="smollm2-135m-q4",
            storage_mb=32768,
            software_version="lilevy-sim 0.1",
        )

    def _node(self, index: int, client: EdgeClient, enrolment: Enrollment) -> _Node:
        knowledge = None
        if self.sync_every_s:
            knowledge = EdgeKnowledge(
                self.box_dir / f"knowledge-{index:05d}.db",
                enrolment.node_id,
                enrolment.signing_public_key,
            )
        node = _Node(client, random.Random(self.rng.random()), self.region, knowledge)
        if self.rollout_artifact:
            # Which nodes fail is a hash of their index, not a draw: the seeded draws of
            # the rest of the run stay as they were.
            digest = hashlib.sha256(f"fail:{index}".encode()).digest()
            fails = int.from_bytes(digest[:8]) / 2**64 < self.fail_share
            if fails:
                self.failing.add(enrolment.node_id)
            node.updater = Updater(
                client,
                self.box_dir / f"slots-{index:05d}",
                enrolment.signing_public_key,
                hardware=self._description(index).hardware,
                self_tests={k: _simulated_test(fails) for k in ("model", "software", "config")},
                free_bytes=lambda: int(node.free_mb * 1024 * 1024),
            )
        return node

    # -- a rollout ----------------------------------------------------------------------------

    async def _start_rollout(self) -> None:
        admin = EdgeClient(self.base_url, key=self.admin_key, http=self.http, retry=self.retry)
        reply = await admin.request(
            "POST",
            "/v1/rollouts",
            json={
                "artifact_id": self.rollout_artifact,
                "to": {"nodes": [n.client.node_id for n in self.fleet]},
                "phases": list(self.rollout_phases),
            },
        )
        self.rollout_id = reply.body["id"]
        self.rollout_started = time.monotonic()

    async def _watch_rollout(self) -> None:
        """Ends the run once the rollout paused, completed or rolled back."""
        admin = EdgeClient(self.base_url, key=self.admin_key, http=self.http, retry=self.retry)
        while not self.stop.is_set():
            try:
                reply = await admin.request("GET", f"/v1/rollouts/{self.rollout_id}")
            except EdgeError:
                reply = None
            if reply is not None and reply.body["state"] in SETTLED_ROLLOUTS:
                self.rollout_settled = time.monotonic() - self.rollout_started
                self.stop.set()
                return
            await _sleep_or_stop(self.stop, 0.25)

    async def _rollout_outcome(self) -> RolloutOutcome:
        admin = EdgeClient(self.base_url, key=self.admin_key, http=self.http, retry=self.retry)
        rollout = (await admin.request("GET", f"/v1/rollouts/{self.rollout_id}")).body
        members = (await admin.request("GET", f"/v1/rollouts/{self.rollout_id}/nodes")).body
        beyond = [
            m for m in members["data"] if m["phase"] > rollout["phase"] and m["status"] != "pending"
        ]
        return RolloutOutcome(
            rollout_id=rollout["id"],
            state=rollout["state"],
            phase=rollout["phase"],
            settled_after_s=self.rollout_settled,
            counts=rollout["counts"],
            failing_nodes=len(self.failing),
            offered_beyond=len(beyond),
            reported=self.reported,
        )

    def _follow(self, node: _Node, reply: HeartbeatReply) -> None:
        """Act on artifact directives in the background, one install at a time per node."""
        wanted = [d for d in reply.directives if d.type.startswith("artifact_")]
        if not wanted or node.updater is None or node.updating is not None:
            return

        async def follow(updater: Updater) -> None:
            for outcome in await updater.follow(wanted):
                self.reported[outcome.status] += 1

        node.updating = asyncio.create_task(follow(node.updater))
        node.updating.add_done_callback(lambda _: setattr(node, "updating", None))

    # -- load ---------------------------------------------------------------------------------

    async def _load(self) -> float:
        """Run every node's loops for `duration_s`; the seconds the run really took."""
        self.started_at = time.monotonic()
        loops = [asyncio.create_task(self._heartbeats(n)) for n in self.fleet]
        loops += [asyncio.create_task(self._asking(n)) for n in self.fleet]
        loops += [
            asyncio.create_task(self._syncing(n)) for n in self.fleet if n.knowledge is not None
        ]
        tick = asyncio.create_task(self._ticker())
        if self.rollout_id:
            loops.append(asyncio.create_task(self._watch_rollout()))
        await _sleep_or_stop(self.stop, self.duration_s)
        self.stop.set()
        elapsed = time.monotonic() - self.started_at
        await asyncio.gather(*loops, tick)
        return elapsed

    async def _ticker(self) -> None:
        while not self.stop.is_set():
            if self.on_progress:
                self.on_progress(
                    Progress(
                        "running",
                        min(self.duration_s, time.monotonic() - self.started_at),
                        self.duration_s,
                        self.stats.acknowledged_heartbeats,
                        self.stats.kinds["escalation"].ok,
                        sum(self.stats.failures.values()),
                    )
                )
            await _sleep_or_stop(self.stop, 1.0)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a call in the background: a slow answer does not hold up the node's loop."""
        task = asyncio.create_task(coro)
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def _heartbeats(self, node: _Node) -> None:
        """Beat every `heartbeat_interval_s` from a random phase; a loop running late does not
        catch up more than one interval's worth of beats."""
        loop = asyncio.get_running_loop()
        await _sleep_or_stop(self.stop, node.rng.uniform(0, self.heartbeat_interval_s))
        due = loop.time()
        while not self.stop.is_set():
            self._spawn(self._beat(node))
            due = max(due + self.heartbeat_interval_s, loop.time() - self.heartbeat_interval_s)
            await _sleep_or_stop(self.stop, due - loop.time())

    async def _beat(self, node: _Node) -> None:
        started = time.perf_counter()
        try:
            reply = await node.client.heartbeat(node.status(), queue_if_offline=True)
        except EdgeError as exc:
            self.stats.fail("heartbeat", exc)
            return
        if isinstance(reply, Queued):
            self.stats.kinds["heartbeat"].queued += 1
            return
        self.stats.acknowledged_heartbeats += 1
        self.stats.kinds["heartbeat"].ok += 1
        self.stats.kinds["heartbeat"].latencies_ms.append((time.perf_counter() - started) * 1e3)
        node.heard(reply)
        self._follow(node, reply)
        self._start_flush(node)

    async def _asking(self, node: _Node) -> None:
        while True:
            await _sleep_or_stop(self.stop, node.rng.expovariate(1.0 / self.question_every_s))
            if self.stop.is_set():
                return
            (question,) = node.rng.choices(self.pool, self.weights)
            self._spawn(self._ask(node, _reworded(question, node.rng) if self.zipf else question))

    async def _ask(self, node: _Node, message: str) -> None:
        node.asked += 1
        if self.metrics is not None:
            self.metrics.sms_received()
        minute = int((time.monotonic() - self.started_at) // 60)
        if node.knowledge is not None and node.knowledge.faq_answer(message):
            self.stats.asked(minute, locally=True)
            node.answered_segments += 1
            node.faq_answered += 1
            if self.metrics is not None:
                self.metrics.answered_locally("faq")
            return
        self.stats.asked(minute, locally=False)
        started = time.perf_counter()
        try:
            answer = await node.client.escalate(
                message,
                language=guess_language(message),
                region=node.region,
                queue_if_offline=True,
            )
        except EdgeError as exc:
            self.stats.fail("escalation", exc)
            return
        if isinstance(answer, Queued):
            self.stats.kinds["escalation"].queued += 1
            return
        self.stats.kinds["escalation"].ok += 1
        self.stats.kinds["escalation"].latencies_ms.append((time.perf_counter() - started) * 1e3)
        node.answered_segments += int(answer.get("sms_segments", 1))

    async def _syncing(self, node: _Node) -> None:
        work = self.box_dir / f"downloads-{node.client.node_id}"
        while node.knowledge is not None and not self.stop.is_set():
            if node.rng.random() < self.restart_probability:
                node.knowledge = node.knowledge.reopened()
                self.stats.restarts += 1
            cut = None
            if node.rng.random() < self.cut_probability:
                cut = node.rng.randint(1, 256)  # the uplink drops early in the download
            try:
                result = await sync_knowledge(node.client, node.knowledge, work, max_bytes=cut)
                self.stats.packages_applied += int(result.applied is not None)
            except (EdgeError, PackageRejected) as exc:
                error = exc if isinstance(exc, EdgeError) else EdgeError(str(exc))
                self.stats.fail("sync", error)
            await _sleep_or_stop(self.stop, self.sync_every_s or 0)

    async def _flush(self, node: _Node) -> None:
        self.stats.delivered(await node.client.flush())

    def _start_flush(self, node: _Node) -> None:
        """Deliver the node's outbox in the background, once at a time."""
        if node.flushing or not node.client.outbox or not node.client.outbox.depth():
            return
        node.flushing = asyncio.create_task(self._flush(node))
        node.flushing.add_done_callback(lambda _: setattr(node, "flushing", None))

    # -- drain and report ---------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let the calls in flight finish, then deliver every outbox once more; each step gets
        up to `drain_s`."""
        if self.on_progress:
            self.on_progress(Progress("draining", 0, len(self.inflight), 0, 0, 0))
        deadline = time.monotonic() + self.drain_s
        installs = {n.updating for n in self.fleet if n.updating is not None}
        await _finish(self.inflight | installs, self.fleet, deadline)
        for node in self.fleet:
            self._start_flush(node)
        await _finish(set(), self.fleet, deadline + self.drain_s)

    async def _report(self, elapsed: float) -> SimulationReport:
        fleet, stats = self.fleet, self.stats
        mismatched = [n.client.node_id for n in fleet if not await _in_sync(n, self.box_dir)]
        depth = sum(n.client.outbox.depth() for n in fleet if n.client.outbox)
        dead = sum(len(n.client.outbox.dead_letters()) for n in fleet if n.client.outbox)
        return SimulationReport(
            nodes=len(fleet),
            node_ids=[n.client.node_id or "" for n in fleet],
            duration_s=elapsed,
            kinds=stats.kinds,
            responses=stats.responses,
            failures=stats.failures,
            acknowledged_heartbeats=stats.acknowledged_heartbeats,
            outbox_depth=depth,
            dead_letters=dead,
            answered_locally=stats.answered_locally,
            timeline=[(asked, local) for asked, local in stats.timeline],
            packages_applied=stats.packages_applied,
            restarts=stats.restarts,
            out_of_sync=[node_id or "" for node_id in mismatched],
            rollout=await self._rollout_outcome() if self.rollout_id else None,
        )


async def simulate_async(
    base_url: str,
    admin_key: str,
    nodes: int,
    duration_s: float,
    heartbeat_interval_s: float = 5.0,
    question_every_s: float = 60.0,
    region: str = "KE",
    questions: Sequence[str] | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    outbox_dir: Path | None = None,
    drain_s: float = 120.0,
    seed: int | None = None,
    retry: RetryPolicy = RetryPolicy(),
    sync_every_s: float | None = None,
    cut_probability: float = 0.0,
    restart_probability: float = 0.0,
    zipf: float = 0.0,
    metrics_port: int | None = None,
    rollout_artifact: str | None = None,
    rollout_phases: Sequence[float] = (5, 25, 100),
    fail_share: float = 0.0,
) -> SimulationReport:
    """Enrol `nodes` nodes, run them for `duration_s`, then let in-flight calls finish (up to
    `drain_s`) and deliver the outboxes once more.

    `sync_every_s`: each node also keeps a knowledge store synced from bigEVY (resumable,
    verified packages) and answers a question itself when it holds an FAQ entry for it; a
    download is cut short with `cut_probability` (the next sync resumes it), and before a sync
    a node restarts with `restart_probability` (its store closed and opened again from disk,
    its partial download kept). At the end each
    node syncs once more and its store is compared with a full snapshot built for it then.
    `zipf`: questions are drawn with weight 1/rank**zipf (0: uniformly), and reworded a
    little each time (case, punctuation, a greeting), as people ask the same thing.
    `metrics_port`: serve the fleet's `lilevy.metrics`, added up over the nodes, at
    http://127.0.0.1:PORT/metrics from before enrolment until the run ends.
    `rollout_artifact`: once enrolled, the fleet is sent this artifact in a rollout of
    `rollout_phases`; each node installs it A/B as `lilevy.updates` does, and `fail_share`
    of them (a fixed choice) fail their self-test. The run ends when the rollout pauses,
    completes or rolls back (or after `duration_s`), and the report says how it went.
    """
    pool = list(questions) if questions is not None else load_questions()
    if not pool:
        raise ValueError("no questions to ask")
    simulation = _Simulation(
        base_url=base_url,
        admin_key=admin_key,
        nodes=nodes,
        duration_s=duration_s,
        heartbeat_interval_s=heartbeat_interval_s,
        question_every_s=question_every_s,
        region=region,
        pool=pool,
        on_progress=on_progress,
        outbox_dir=outbox_dir,
        drain_s=drain_s,
        rng=random.Random(seed),
        retry=retry,
        sync_every_s=sync_every_s,
        cut_probability=cut_probability,
        restart_probability=restart_probability,
        zipf=zipf,
        metrics_port=metrics_port,
        rollout_artifact=rollout_artifact,
        rollout_phases=tuple(rollout_phases),
        fail_share=fail_share,
    )
    return await simulation.run()


def simulate(
    base_url: str,
    admin_key: str,
    nodes: int,
    duration_s: float,
    heartbeat_interval_s: float = 5.0,
    question_every_s: float = 60.0,
    region: str = "KE",
    questions: Sequence[str] | None = None,
    **options: object,
) -> SimulationReport:
    """`simulate_async` on a fresh event loop (see there)."""
    return asyncio.run(
        simulate_async(
            base_url,
            admin_key,
            nodes,
            duration_s,
            heartbeat_interval_s,
            question_every_s,
            region,
            questions,
            **options,  # type: ignore[arg-type]
        )
    )
