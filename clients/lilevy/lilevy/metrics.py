"""A node's own metrics, for Prometheus: the SMS it took, what it answered itself, what it
escalated and how that went, its outbox, its syncs, its alerts and heartbeats.

bigEVY sees a node only through its heartbeats; these figures are the node's side, scraped
where the node (or the fleet simulator, for its whole fleet) runs. Kept in a registry of their
own, not prometheus-client's global one, so a process that embeds lilevy exports them only
when it asks to. Labels are bounded: a few fixed values each, never a node id or a phone
number (a node has only itself; the simulator adds its nodes up).

    metrics = NodeMetrics()
    metrics.watch_outbox(outbox.depth)
    server = metrics.serve(9464)
    edge = EdgeClient(url, outbox=outbox, metrics=metrics)  # counts its calls from here on
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING, Literal, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from lilevy.outbox import DeliveryReport

LocalSource = Literal["faq", "model"]
EscalationOutcome = Literal["answered", "failed", "queued"]
HeartbeatOutcome = Literal["sent", "failed", "queued"]
SyncFailure = Literal["rejected", "incomplete", "unavailable", "refused"]
AlertEvent = Literal["received", "acknowledged", "rejected"]

#: Seconds: a cached answer over a good uplink to a busy model over GSM with retries.
ROUND_TRIP_S = (0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300)
#: Outbox entries counted when delivered; the other kinds a node queues none of.
_OUTBOX_KINDS = ("heartbeat", "escalation")


def _checked(argument: str, value: str, allowed: object) -> str:
    """`value` if it is one of the `allowed` Literal's, else a ValueError naming them."""
    if value not in get_args(allowed):
        raise ValueError(f"{argument} must be one of {', '.join(get_args(allowed))}, not {value!r}")
    return value


@dataclass
class MetricsServer:
    """The HTTP endpoint serving /metrics, in a daemon thread until `close`."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port bound (the one chosen by the system when 0 was asked for)."""
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class NodeMetrics:
    """The metric families of one node, or of a simulated fleet added up; each method records
    one event and refuses a label value outside its few."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._add_traffic(self.registry)
        self._add_upkeep(self.registry)
        self._zero_series()

    def _add_traffic(self, r: CollectorRegistry) -> None:
        """The SMS, what became of them, and the heartbeats."""
        self._sms = Counter("lilevy_sms_received", "SMS questions received.", registry=r)
        self._local = Counter(
            "lilevy_sms_answered_locally",
            "SMS the node answered without bigEVY, by source (faq: an FAQ entry it holds; "
            "model: its own model).",
            ["source"],
            registry=r,
        )
        self._escalations = Counter(
            "lilevy_escalations",
            "Questions escalated to bigEVY, by outcome (answered; queued in the outbox; "
            "failed: refused, or unreachable with no outbox).",
            ["outcome"],
            registry=r,
        )
        self._round_trip = Histogram(
            "lilevy_escalation_round_trip_seconds",
            "From escalating a question to bigEVY's answer, retries included.",
            buckets=ROUND_TRIP_S,
            registry=r,
        )
        self._heartbeats = Counter(
            "lilevy_heartbeats",
            "Heartbeats, by outcome (sent: acknowledged; queued in the outbox; failed).",
            ["outcome"],
            registry=r,
        )

    def _add_upkeep(self, r: CollectorRegistry) -> None:
        """The outbox, the syncs and the alerts."""
        self._outbox_depth = Gauge(
            "lilevy_outbox_depth", "Calls waiting in the outbox for the uplink.", registry=r
        )
        self._deliveries = Counter(
            "lilevy_outbox_deliveries",
            "Outbox entries sent at last, by kind and outcome (delivered; dead_letter: "
            "refused for good).",
            ["kind", "outcome"],
            registry=r,
        )
        self._packages = Counter(
            "lilevy_sync_packages_applied", "Knowledge packages applied.", registry=r
        )
        self._sync_bytes = Counter(
            "lilevy_sync_downloaded_bytes",
            "Package bytes downloaded (resumed downloads count only the bytes fetched).",
            registry=r,
        )
        self._sync_failures = Counter(
            "lilevy_sync_failures",
            "Syncs that did not finish, by reason (rejected: a package that failed the "
            "node's checks; incomplete: download cut; unavailable: the uplink or a busy "
            "bigEVY; refused by bigEVY).",
            ["reason"],
            registry=r,
        )
        self._alerts = Counter(
            "lilevy_alerts",
            "Emergency alerts, by event (received: verified and new; acknowledged; "
            "rejected: a forgery or another region's).",
            ["event"],
            registry=r,
        )

    def _zero_series(self) -> None:
        """Every labelled series from the start: a counter that appears only at its first
        event hides that event from `rate()`."""
        for counter, values in [
            (self._local, get_args(LocalSource)),
            (self._escalations, get_args(EscalationOutcome)),
            (self._heartbeats, get_args(HeartbeatOutcome)),
            (self._sync_failures, get_args(SyncFailure)),
            (self._alerts, get_args(AlertEvent)),
        ]:
            for value in values:
                counter.labels(value)
        for kind in _OUTBOX_KINDS:
            self._deliveries.labels(kind, "delivered")
            self._deliveries.labels(kind, "dead_letter")

    # -- events -------------------------------------------------------------------------------

    def sms_received(self, count: int = 1) -> None:
        self._sms.inc(count)

    def answered_locally(self, source: LocalSource, count: int = 1) -> None:
        self._local.labels(_checked("source", source, LocalSource)).inc(count)

    def escalation(self, outcome: EscalationOutcome, seconds: float | None = None) -> None:
        """One escalation's outcome; `seconds`, its round trip, for an answered one."""
        self._escalations.labels(_checked("outcome", outcome, EscalationOutcome)).inc()
        if seconds is not None:
            self._round_trip.observe(seconds)

    def heartbeat(self, outcome: HeartbeatOutcome) -> None:
        self._heartbeats.labels(_checked("outcome", outcome, HeartbeatOutcome)).inc()

    def delivered(self, report: DeliveryReport) -> None:
        """An outbox delivery's entries sent or buried (kinds other than heartbeats and
        escalations are not counted)."""
        for item in report.delivered:
            if item.entry.kind in _OUTBOX_KINDS:
                self._deliveries.labels(item.entry.kind, "delivered").inc()
        for letter in report.dead_lettered:
            if letter.entry.kind in _OUTBOX_KINDS:
                self._deliveries.labels(letter.entry.kind, "dead_letter").inc()

    def downloaded(self, size: int) -> None:
        self._sync_bytes.inc(size)

    def package_applied(self) -> None:
        self._packages.inc()

    def sync_failed(self, reason: SyncFailure) -> None:
        self._sync_failures.labels(_checked("reason", reason, SyncFailure)).inc()

    def alert(self, event: AlertEvent) -> None:
        self._alerts.labels(_checked("event", event, AlertEvent)).inc()

    def watch_outbox(self, depth: Callable[[], float]) -> None:
        """Read the outbox depth from `depth` at each scrape (from the server's thread), not
        after every call: a count over SQLite costs something, a scrape comes every 15 s."""
        self._outbox_depth.set_function(depth)

    # -- export -------------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve these metrics at http://addr:port/metrics (port 0: any free one). Loopback
        by default, as bigEVY binds: SMS volumes are not for anyone on the network; give the
        address Prometheus reaches to open it."""
        server, thread = start_http_server(port, addr, registry=self.registry)
        return MetricsServer(server, thread)
