"""Emergency alerts: kept in the metadata database, signed like packages, tracked per node.

Plain and blocking (SQLAlchemy); the gateway calls it from worker threads. An alert reaches a
node whose region is one of its regions (or any node, for "global"); it is handed out (pushed
on the node's stream, or in its heartbeat reply) until the node acknowledges the current
version. An update or a cancel is a new version, so it goes out again; an expired alert is no
longer handed out, and a node drops it by its `expires` on its own.
"""

from __future__ import annotations

import json
import secrets as random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bigevy import metrics
from bigevy.alerts.sms import alert_sms
from bigevy.errors import Conflict, Forbidden, NotFound, ValidationFailed
from bigevy.fleet.models import OPERATOR_ORIGIN, Alert, AlertDelivery, Node
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import AlertIn, AlertOut, Delivery, SignedAlert
from bigevy.sync.package import Signed

T = TypeVar("T")

#: The alert fields signed and sent to nodes, besides id, version and status.
_CONTENT = [
    "identifier",
    "sender",
    "msg_type",
    "event",
    "severity",
    "urgency",
    "certainty",
    "headline",
    "description",
    "instruction",
    "area",
    "regions",
    "sent",
    "expires",
    "source_url",
]


@dataclass(frozen=True)
class Live:
    """What a gateway replica needs to push an alert version to the nodes connected to it."""

    id: str
    version: int
    status: str
    regions: frozenset[str]
    expires: float

    def reaches(self, region: str) -> bool:
        return "global" in self.regions or region in self.regions


#: How long a replica reuses its read of the live alerts: every heartbeat asks, and an alert
#: posted elsewhere reaches heartbeats this much later (streams follow `AlertHub`'s poll).
LIVE_TTL_S = 0.5


class AlertService:
    def __init__(self, fleet: FleetService, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.sessions = fleet.sessions
        self.clock = clock
        self._live: tuple[float, list[Live]] = (float("-inf"), [])

    # -- operators and connectors ------------------------------------------------------------

    def post(
        self, body: AlertIn, created_by: str | None, origin: str = OPERATOR_ORIGIN
    ) -> tuple[AlertOut, bool]:
        """Create, update (same origin, sender and identifier) or cancel; (the alert,
        created?). `origin`: "operator", or "source:<name>" for a connector.

        Posting the same content again changes nothing (no new version, nothing re-sent)."""
        try:
            return _once_more_if_raced(lambda: self._post(body, created_by, origin))
        finally:
            self._forget_live()

    def _forget_live(self) -> None:
        """After a write (committed by now): this replica's next `live()` reads afresh."""
        self._live = (float("-inf"), [])

    def _post(self, body: AlertIn, created_by: str | None, origin: str) -> tuple[AlertOut, bool]:
        now = self.clock()
        content = body.model_dump(mode="json")
        content["sent"] = body.sent or now
        if body.msg_type != "Cancel" and body.expires <= now:
            raise ValidationFailed("expires is in the past", param="expires")
        with self.sessions.begin() as session:
            alert = session.scalars(
                select(Alert).where(
                    Alert.origin == origin,
                    Alert.sender == body.sender,
                    Alert.identifier == body.identifier,
                )
            ).first()
            if body.msg_type == "Cancel":
                if alert is None:
                    raise NotFound(
                        f"no alert {body.identifier!r} from {body.sender!r} to cancel",
                        param="identifier",
                    )
                if alert.status != "cancelled":
                    self._cancel(alert, now)
                return self._out(session, alert, now, detail=False), False
            created = alert is None
            if alert is None:
                alert = Alert(
                    id=f"alert-{random.token_hex(8)}",
                    origin=origin,
                    sender=body.sender,
                    identifier=body.identifier,
                    version=0,
                    created_at=now,
                    created_by=created_by,
                )
                session.add(alert)
            elif self._content(alert) == {**content, "sent": self._content(alert)["sent"]}:
                return self._out(session, alert, now, detail=False), False
            self._sign(alert, content, "active", alert.version + 1, now)
            session.flush()
            return self._out(session, alert, now, detail=False), created

    def cancel(self, alert_id: str) -> AlertOut:
        now = self.clock()
        with self.sessions.begin() as session:
            alert = self._alert(session, alert_id)
            if alert.status != "cancelled":
                self._cancel(alert, now)
            out = self._out(session, alert, now, detail=True)
        self._forget_live()
        return out

    def _cancel(self, alert: Alert, now: float) -> None:
        content = self._content(alert)
        self._sign(alert, {**content, "msg_type": "Cancel"}, "cancelled", alert.version + 1, now)

    def _sign(self, alert: Alert, content: dict, status: str, version: int, now: float) -> None:
        document = {
            "id": alert.id,
            "version": version,
            "status": status,
            **{k: content[k] for k in _CONTENT},
        }
        document["sms"] = alert_sms(content).text
        signed = Signed.of(document, self.fleet.signing)
        alert.version, alert.status = version, status
        alert.event, alert.severity, alert.urgency = (
            content["event"],
            content["severity"],
            content["urgency"],
        )
        alert.regions, alert.headline = content["regions"], content["headline"]
        alert.sent, alert.expires = content["sent"], content["expires"]
        alert.updated_at = now
        alert.signed, alert.signature = signed.text, signed.signature

    @staticmethod
    def _content(alert: Alert) -> dict:
        document = json.loads(alert.signed)
        return {k: document[k] for k in _CONTENT}

    # -- reading -----------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertOut:
        with self.sessions() as session:
            return self._out(session, self._alert(session, alert_id), self.clock(), detail=True)

    def list(self, include_ended: bool, detail: bool) -> list[AlertOut]:
        now = self.clock()
        with self.sessions() as session:
            query = select(Alert).order_by(Alert.updated_at.desc())
            if not include_ended:
                query = query.where(Alert.status == "active", Alert.expires > now)
            return [self._out(session, a, now, detail) for a in session.scalars(query)]

    def _out(self, session: Session, alert: Alert, now: float, detail: bool) -> AlertOut:
        nodes = self._nodes_reached(session, alert)
        rows = {
            d.node_id: d
            for d in session.scalars(
                select(AlertDelivery).where(AlertDelivery.alert_id == alert.id)
            )
        }
        deliveries = []
        for node_id, region in nodes:
            row = rows.get(node_id)
            if row is None:
                status = "pending"
            elif row.acked_version == alert.version:
                status = "acked"
            else:
                status = "sent" if row.version == alert.version else "pending"
            deliveries.append(
                Delivery(
                    node_id=node_id,
                    region=region,
                    status=status,
                    via=row.via if row else None,
                    sends=row.sends if row else 0,
                    first_sent_at=row.first_sent_at if row else None,
                    acked_at=row.acked_at if row else None,
                )
            )
        status = alert.status
        if status == "active" and alert.expires <= now:
            status = "expired"
        return AlertOut(
            id=alert.id,
            version=alert.version,
            status=status,
            identifier=alert.identifier,
            sender=alert.sender,
            origin=alert.origin,
            event=alert.event,
            severity=alert.severity,
            urgency=alert.urgency,
            headline=alert.headline,
            regions=alert.regions,
            sent=alert.sent,
            expires=alert.expires,
            created_at=alert.created_at,
            updated_at=alert.updated_at,
            nodes=len(nodes),
            acked=sum(1 for d in deliveries if d.status == "acked"),
            deliveries=deliveries if detail else None,
        )

    def reach(self, regions: list[str]) -> int:
        """How many enrolled nodes an alert to `regions` would reach now."""
        with self.sessions() as session:
            return len(_nodes_in(session, regions))

    def _nodes_reached(self, session: Session, alert: Alert) -> list[tuple[str, str]]:
        return _nodes_in(session, alert.regions)

    # -- nodes ---------------------------------------------------------------------------------

    def live(self) -> list[Live]:
        """Every alert version still to hand out: active and unexpired, or cancelled while
        unexpired (so nodes that showed it learn to withdraw it). Heads only: every heartbeat
        asks, and most find nothing new."""
        now = self.clock()
        read_at, live = self._live
        if time.monotonic() - read_at < LIVE_TTL_S:
            return [a for a in live if a.expires > now]
        with self.sessions() as session:
            rows = session.execute(
                select(Alert.id, Alert.version, Alert.status, Alert.regions, Alert.expires).where(
                    Alert.expires > now
                )
            )
            live = [
                Live(i, v, status, frozenset(regions), exp) for i, v, status, regions, exp in rows
            ]
        self._live = (time.monotonic(), live)
        return live

    def signed(self, ids: list[str]) -> list[SignedAlert]:
        """The signed current versions of these alerts, in the order asked."""
        if not ids:
            return []
        with self.sessions() as session:
            alerts = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(ids)))}
        return [self._signed(alerts[i]) for i in ids if i in alerts]

    def pending_for(self, node_id: str, region: str | None = None) -> list[SignedAlert]:
        """Alert versions the node has not acknowledged (a cancel only if it got the alert)."""
        live = self.live()
        if not live:
            return []  # most heartbeats: nothing to look up
        with self.sessions() as session:
            if region is None:
                region = self.fleet.live_node(session, node_id).region
            acked = dict(
                session.execute(
                    select(AlertDelivery.alert_id, AlertDelivery.acked_version).where(
                        AlertDelivery.node_id == node_id
                    )
                ).all()
            )
        pending = []
        for alert in live:
            if not alert.reaches(region):
                continue
            if alert.id in acked and acked[alert.id] == alert.version:
                continue
            if alert.status == "cancelled" and alert.id not in acked:
                continue  # never had it: nothing to withdraw
            pending.append(alert.id)
        return self.signed(pending)

    def mark_sent(self, node_id: str, sent: list[tuple[str, int]], via: str) -> None:
        """Record that these (alert id, version) went to the node, in one transaction."""
        if not sent:
            return
        _once_more_if_raced(lambda: self._mark_sent(node_id, sent, via))

    def _mark_sent(self, node_id: str, sent: list[tuple[str, int]], via: str) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            for alert_id, version in sent:
                # In SQL, not read-modify-write: two replicas sending at once both count.
                where = (AlertDelivery.alert_id == alert_id, AlertDelivery.node_id == node_id)
                changed = session.execute(
                    update(AlertDelivery)
                    .where(*where)
                    .values(
                        version=case(
                            (AlertDelivery.version < version, version),
                            else_=AlertDelivery.version,
                        ),
                        last_sent_at=now,
                        sends=AlertDelivery.sends + 1,
                        via=via,
                    )
                )
                if changed.rowcount == 0:
                    session.add(_delivery(alert_id, node_id, version, now, sends=1, via=via))
                    alert = session.get(Alert, alert_id)
                    if alert is not None:  # its first delivery to this node
                        waited = max(0.0, now - alert.updated_at)
                        metrics.ALERT_DELIVERY.observe(
                            waited, tags={"event": "delivered", "via": via}
                        )

    def ack(self, node_id: str, alert_id: str, version: int) -> AlertOut:
        return _once_more_if_raced(lambda: self._ack(node_id, alert_id, version))

    def _ack(self, node_id: str, alert_id: str, version: int) -> AlertOut:
        now = self.clock()
        with self.sessions.begin() as session:
            node = self.fleet.live_node(session, node_id)
            alert = self._alert(session, alert_id)
            if "global" not in alert.regions and node.region not in alert.regions:
                raise Forbidden(f"alert {alert_id!r} is not for region {node.region!r}")
            if version > alert.version:
                raise Conflict(
                    f"version {version} of alert {alert_id!r} was never sent "
                    f"(the latest is {alert.version})",
                    code="version_not_sent",
                    param="version",
                )
            row = session.get(AlertDelivery, (alert_id, node_id))
            if row is None:
                row = _delivery(alert_id, node_id, version, now, sends=0, via="unknown")
                session.add(row)
            if row.acked_version is None or version > row.acked_version:
                row.acked_version, row.acked_at = version, now
                if version == alert.version:
                    waited = max(0.0, now - alert.updated_at)
                    metrics.ALERT_DELIVERY.observe(waited, tags={"event": "acked", "via": row.via})
            session.flush()
            return self._out(session, alert, now, detail=False)

    @staticmethod
    def _signed(alert: Alert) -> SignedAlert:
        return SignedAlert(
            alert_id=alert.id, version=alert.version, alert=alert.signed, signature=alert.signature
        )

    def _alert(self, session: Session, alert_id: str) -> Alert:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}", param="alert_id")
        return alert


def _nodes_in(session: Session, regions: list[str]) -> list[tuple[str, str]]:
    query = select(Node.id, Node.region).where(Node.revoked_at.is_(None)).order_by(Node.id)
    if "global" not in regions:
        query = query.where(Node.region.in_(regions))
    return [(node_id, region) for node_id, region in session.execute(query)]


def _delivery(
    alert_id: str, node_id: str, version: int, now: float, *, sends: int, via: str
) -> AlertDelivery:
    """A node's first delivery row for an alert (sent, or acked before any send was seen)."""
    return AlertDelivery(
        alert_id=alert_id,
        node_id=node_id,
        version=version,
        first_sent_at=now,
        last_sent_at=now,
        sends=sends,
        via=via,
    )


def _once_more_if_raced(work: Callable[[], T]) -> T:
    """`work`, again if a concurrent transaction inserted the row it was about to: the second
    run finds that row and updates it (two replicas sending, or posting, the same alert)."""
    try:
        return work()
    except IntegrityError:
        return work()
