"""The runner: fetches each source when due, delivers only what changed, and tracks health.

One round (`run_due`) fetches every due source (a few at once), compares each batch with the
content hashes it delivered before, and hands the new and changed items to the `Sink`:
alerts first, then documents, then deletions. What a sink accepted is remembered at once, in
memory and in the state file, so a restart does not redeliver it. A failed fetch delivers
nothing and leaves all stored knowledge as it was; the source turns unhealthy with the reason
and is retried after an exponential backoff. A failed delivery is retried the same way, and
whatever the sink did not accept is offered again.

Delivery is at least once: a crash between a sink call and the state write offers those items
again, which the knowledge base (content hashes) and alert service (same identifier) absorb.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from bigevy import metrics
from bigevy.connectors.base import Batch, Connector, SourceError, redact_urls
from bigevy.connectors.cap import CapConnector
from bigevy.connectors.directory import DirectoryConnector
from bigevy.connectors.jsonapi import JsonApiConnector
from bigevy.connectors.rss import RssConnector
from bigevy.connectors.spec import FALLBACK_INTERVAL_S, ConnectorsSpec, SourceSpec
from bigevy.connectors.state import SourceHealth, SourceState, StateCorrupt, StateStore
from bigevy.http.alerts.protocol import AlertIn
from bigevy.knowledge.records import DocumentIn

log = logging.getLogger(__name__)

#: run_forever checks at least this often, so a stop or a clock jump is noticed.
MAX_SLEEP_S = 30.0


class Sink(Protocol):
    """Where new and changed items go. A call that returns has taken them; one that raises has
    not, and they are offered again after the source's backoff."""

    async def documents(self, docs: list[DocumentIn]) -> None:
        """Add or update these knowledge documents (same id = replace)."""
        ...

    async def alerts(self, alerts: list[AlertIn], source: str) -> None:
        """Send, update (same sender + identifier, from the same `source`) or withdraw
        (msg_type Cancel) these alerts of `source`."""
        ...

    async def deleted(self, ids: list[str]) -> None:
        """Delete these knowledge documents: their source no longer holds them."""
        ...


@dataclass(frozen=True)
class RoundResult:
    """What one source's turn in a round did."""

    source: str
    ok: bool
    reason: str = ""
    documents: int = 0
    alerts: int = 0
    deleted: int = 0


def connector_for(spec: SourceSpec, *, clock: Callable[[], float] = time.time) -> Connector:
    """The connector class of a source's kind."""
    if spec.kind == "cap":
        return CapConnector(spec, clock=clock)
    if spec.kind == "rss":
        return RssConnector(spec)
    if spec.kind == "json":
        return JsonApiConnector(spec)
    if spec.kind == "directory":
        return DirectoryConnector(spec)
    raise ValueError(f"kind must be one of cap, rss, json, directory; got {spec.kind!r}")


class ConnectorRunner:
    """Schedules, fetches, dedupes and delivers the sources; one per bigEVY (one writer).

    Collaborators are arguments so tests need no network, no clock and no sleeping:
    `client` (default: one the runner opens and closes), `clock` (unix seconds), `rng` (backoff
    jitter), `connectors` (by source name, replacing the ones built from the specs).
    """

    def __init__(
        self,
        sources: Sequence[SourceSpec],
        sink: Sink,
        *,
        state_file: Path | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        connectors: Mapping[str, Connector] | None = None,
        max_concurrency: int = 4,
        user_agent: str = "bigEVY-connectors/0.1",
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources must have unique names; got {names}")
        self.sources = {s.name: s for s in sources if s.enabled}
        self.sink = sink
        self.clock = clock
        self.rng = rng or random.Random()
        self._client = client
        self._owns_client = client is None
        self._user_agent = user_agent
        self._connectors: dict[str, Connector] = {
            name: (connectors or {}).get(name) or connector_for(spec, clock=clock)
            for name, spec in self.sources.items()
        }
        self._store = StateStore(state_file)
        self._states = self._load()
        self._limit = asyncio.Semaphore(max_concurrency)
        self._deliver = asyncio.Lock()

    @classmethod
    def from_spec(cls, spec: ConnectorsSpec, sink: Sink, **kwargs: object) -> ConnectorRunner:
        return cls(
            spec.sources,
            sink,
            state_file=spec.state_file,
            max_concurrency=spec.max_concurrency,
            user_agent=spec.user_agent,
            **kwargs,  # type: ignore[arg-type]
        )

    def _load(self) -> dict[str, SourceState]:
        try:
            saved = self._store.load()
        except StateCorrupt as exc:
            log.error("connector state: %s; every source is fetched and delivered afresh", exc)
            saved = {}
        states = {}
        for name, spec in self.sources.items():
            state = saved.get(name) or SourceState(health=SourceHealth(name=name, kind=spec.kind))
            state.health.kind = spec.kind
            states[name] = state
        # Sources no longer configured are kept, so re-enabling one does not redeliver it all.
        return {**saved, **states}

    # -- what operators and the deployment read -------------------------------------------

    def health(self) -> list[SourceHealth]:
        """Each configured source's health, in config order."""
        return [self._states[name].health.model_copy(deep=True) for name in self.sources]

    async def health_report(self) -> list[SourceHealth]:
        """`health()` for a caller on another thread: read on the runner's own event loop,
        so no copy is taken of a health a round is writing."""
        return self.health()

    def next_due(self) -> float:
        """Unix seconds when the next source is due (inf with no sources)."""
        return min((self._states[n].health.next_due for n in self.sources), default=float("inf"))

    # -- running ----------------------------------------------------------------------------

    async def run_due(self, now: float | None = None) -> list[RoundResult]:
        """Fetch and deliver every source due at `now` (default: the clock); one round."""
        now = self.clock() if now is None else now
        due = [n for n in self.sources if self._states[n].health.next_due <= now]
        if not due:
            return []
        client = self._http()
        return list(await asyncio.gather(*(self._run_one(n, client, now) for n in due)))

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Rounds until `stop` is set, sleeping until the next source is due."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await self.run_due()
                except Exception:  # a bug must not stop every source for good
                    log.exception("connector round failed")
                wait = min(MAX_SLEEP_S, max(0.0, self.next_due() - self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            await self.aclose()

    def start(self) -> None:
        """`run_forever` in the background, until the event loop ends, and the health gauges
        reported meanwhile."""
        loop = asyncio.get_running_loop()
        self._forever = loop.create_task(self.run_forever())
        self._reporting = loop.create_task(self._report_health())

    async def _report_health(self, every_s: float = 15.0) -> None:
        # Every interval, not per round: Ray evicts a gauge that is not set again, and a
        # source may wait hours between rounds.
        while True:
            for health in self.health():
                tags = {"source": health.name}
                metrics.CONNECTOR_FAILURES_IN_A_ROW.set(health.consecutive_failures, tags=tags)
                if health.last_success is not None:
                    metrics.CONNECTOR_LAST_SUCCESS.set(health.last_success, tags=tags)
            await asyncio.sleep(every_s)

    async def check_health(self) -> None:
        forever = getattr(self, "_forever", None)
        if forever is not None and forever.done():
            raise RuntimeError(f"the connector loop ended: {forever.exception()!r}")

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> ConnectorRunner:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": self._user_agent})
        return self._client

    async def _run_one(self, name: str, client: httpx.AsyncClient, now: float) -> RoundResult:
        spec, state = self.sources[name], self._states[name]
        state.health.last_attempt = now
        async with self._limit:
            try:
                batch = await self._connectors[name].fetch(client)
            except SourceError as exc:
                return _count(self._failed(name, now, exc.message), 0)
            except Exception as exc:
                log.exception("source %s: connector failed", name)
                failed = self._failed(name, now, f"connector error: {type(exc).__name__}: {exc}")
                return _count(failed, 0)
        async with self._deliver:
            result = await self._deliver_new(name, batch, now)
        _count(result, len(batch.documents) + len(batch.alerts))
        if result.ok:
            health = state.health
            health.status, health.reason, health.consecutive_failures = "healthy", "", 0
            health.last_success = now
            health.next_due = now + float(spec.interval_s or FALLBACK_INTERVAL_S)
            health.items_seen = len(batch.documents) + len(batch.alerts)
            health.warnings = [redact_urls(w) for w in batch.warnings[:50]]
            self._save()
        return result

    async def _deliver_new(self, name: str, batch: Batch, now: float) -> RoundResult:
        """Hand the sink what it has not taken yet; remember each part once it is taken."""
        spec, state = self.sources[name], self._states[name]
        alerts = {_alert_key(a): a for a in batch.alerts}
        alert_hashes = {key: _alert_hash(a) for key, a in alerts.items()}
        new_alerts = [a for k, a in alerts.items() if state.alerts.get(k) != alert_hashes[k]]
        docs = {d.id: d for d in batch.documents}
        doc_hashes = {id_: d.content_hash() for id_, d in docs.items()}
        new_docs = [d for i, d in docs.items() if state.documents.get(i) != doc_hashes[i]]
        gone = [i for i in dict.fromkeys(batch.deleted) if i in state.documents and i not in docs]
        if batch.complete:
            gone += [i for i in state.documents if i not in docs and i not in gone]

        step = "alerts"
        try:
            if new_alerts:
                await self.sink.alerts(new_alerts, name)
            # The source's current alerts: ones that left it have expired or were cancelled.
            state.alerts = alert_hashes if batch.complete else {**state.alerts, **alert_hashes}
            step = "documents"
            if new_docs:
                await self.sink.documents(new_docs)
            _remember(state.documents, doc_hashes, keep=None if batch.complete else _keep(spec))
            step = "deletions"
            if gone:
                await self.sink.deleted(gone)
            for id_ in gone:
                state.documents.pop(id_, None)
        except Exception as exc:
            log.exception("source %s: sink refused %s", name, step)
            return self._failed(name, now, f"delivering {step} failed: {type(exc).__name__}: {exc}")
        state.health.delivered_total += len(new_alerts) + len(new_docs) + len(gone)
        return RoundResult(name, True, "", len(new_docs), len(new_alerts), len(gone))

    def _failed(self, name: str, now: float, reason: str) -> RoundResult:
        spec, health = self.sources[name], self._states[name].health
        health.status, health.reason = "unhealthy", reason
        health.consecutive_failures += 1
        health.next_due = now + spec.retry.delay(health.consecutive_failures, self.rng)
        log.warning(
            "source %s unhealthy (%d in a row): %s", name, health.consecutive_failures, reason
        )
        self._save()
        return RoundResult(name, False, reason)

    def _save(self) -> None:
        try:
            self._store.save(self._states)
        except OSError:
            log.exception("cannot write connector state to %s", self._store.path)


def _count(result: RoundResult, fetched: int) -> RoundResult:
    """A source's turn, for the connector metrics (sources are named by operators)."""
    tags = {"source": result.source}
    metrics.CONNECTOR_ROUNDS.inc(tags={**tags, "ok": "true" if result.ok else "false"})
    if fetched:
        metrics.CONNECTOR_ITEMS.inc(fetched, tags=tags)
    return result


def _keep(spec: SourceSpec) -> int:
    """Hashes kept for a source that is not a mirror: its items roll off, so the oldest are
    forgotten (they would be delivered again only if the source brought them back)."""
    return max(5000, 5 * spec.max_items)


def _remember(known: dict[str, str], seen: dict[str, str], *, keep: int | None) -> None:
    """Record `seen`, most recently seen last, and forget the oldest beyond `keep`."""
    for id_, hash_ in seen.items():
        known.pop(id_, None)
        known[id_] = hash_
    if keep is not None:
        for id_ in list(known)[: max(0, len(known) - keep)]:
            del known[id_]


def _alert_key(alert: AlertIn) -> str:
    return f"{alert.sender}|{alert.identifier}"


def _alert_hash(alert: AlertIn) -> str:
    return hashlib.sha256(alert.model_dump_json().encode()).hexdigest()
