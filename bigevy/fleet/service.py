"""The fleet as the API sees it: keys, enrolment, heartbeats, node state. Plain and blocking
(SQLAlchemy sessions); the gateway calls it from a worker thread.

Each method is one transaction: a refused request (bad token, wrong node, impossible values)
writes nothing, and a request that succeeds writes everything it means or nothing.
"""

from __future__ import annotations

import json
import secrets as random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bigevy import metrics
from bigevy.analytics.questions import redacted
from bigevy.config import FleetSpec, Settings
from bigevy.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from bigevy.fleet import secrets
from bigevy.fleet.db import make_engine, upgrade
from bigevy.fleet.models import (
    ApiKey,
    EnrollmentToken,
    Escalation,
    Heartbeat,
    IdempotentReply,
    Node,
)
from bigevy.fleet.roles import Caller, Role
from bigevy.fleet.signing import SigningKey
from bigevy.http.fleet.protocol import (
    Enrollment,
    EnrollRequest,
    HeartbeatIn,
    HeartbeatOut,
    KeyCreated,
    KeyOut,
    NodeDetail,
    NodeOut,
    NodeState,
    TokenCreated,
    TokenRevoked,
)

#: How often a key's last_used_at is written (a write per request would cost every request).
LAST_USED_EVERY_S = 60.0
#: A reservation not touched for this long belongs to a replica that died answering: a retry
#: takes it over. The replica answering touches it every `PENDING_TOUCH_S`.
PENDING_TIMEOUT_S = 30.0
PENDING_TOUCH_S = 10.0
#: How far ahead of ours a node's clock may be before its measured_at is refused.
CLOCK_SKEW_S = 300.0


class FleetService:
    def __init__(
        self,
        engine: Engine,
        spec: FleetSpec,
        signing: SigningKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.signing = signing
        self.clock = clock
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._used: dict[str, float] = {}

    # -- keys -----------------------------------------------------------------------------

    def bootstrap_admin(self) -> str | None:
        """The first admin key, when there is no usable admin key at all."""
        now = self.clock()
        with self.sessions.begin() as session:
            live = session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.role == Role.admin, *_usable(now))
            )
            if live:
                return None
            return self._new_key(session, Role.admin, "first admin key", None, None).key

    def create_key(
        self,
        role: Role,
        name: str = "",
        expires_in_s: int | None = None,
        node_id: str | None = None,
    ) -> KeyCreated:
        with self.sessions.begin() as session:
            if node_id is not None and session.get(Node, node_id) is None:
                raise NotFound(f"no node {node_id!r}", param="node_id")
            return self._new_key(session, role, name, node_id, expires_in_s)

    def _new_key(
        self,
        session: Session,
        role: Role,
        name: str,
        node_id: str | None,
        expires_in_s: float | None,
        rotated_from: str | None = None,
    ) -> KeyCreated:
        secret = secrets.new_secret()
        now = self.clock()
        row = ApiKey(
            id=secret.id,
            secret_hash=secret.hash,
            role=str(role),
            name=name,
            node_id=node_id,
            created_at=now,
            expires_at=now + expires_in_s if expires_in_s else None,
            rotated_from=rotated_from,
        )
        session.add(row)
        session.flush()
        return KeyCreated(**_key_fields(row), key=secret.reveal(secrets.KEY_PREFIX))

    def list_keys(self) -> list[KeyOut]:
        with self.sessions() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
            return [KeyOut(**_key_fields(r)) for r in rows]

    def revoke_key(self, key_id: str) -> KeyOut:
        with self.sessions.begin() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = self.clock()
            return KeyOut(**_key_fields(row))

    def rotate_key(self, key_id: str) -> KeyCreated:
        """A new key with the same role, name and node; the old one is revoked at once."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}", param="key_id")
            if row.revoked_at is not None:
                raise Conflict(f"key {key_id!r} is revoked; create a new one", param="key_id")
            row.revoked_at = now
            remaining = row.expires_at - now if row.expires_at else None
            return self._new_key(
                session, Role(row.role), row.name, row.node_id, remaining, rotated_from=row.id
            )

    def authenticate(self, presented: str | None) -> Caller:
        if not presented:
            raise Unauthorized(
                "this route needs an API key: send `Authorization: Bearer <key>`",
                code="missing_api_key",
            )
        parsed = secrets.parse(presented, secrets.KEY_PREFIX)
        now = self.clock()
        with self.sessions() as session:
            row = session.get(ApiKey, parsed.id) if parsed else None
            if row is None or parsed is None or not secrets.matches(parsed.secret, row.secret_hash):
                raise Unauthorized("invalid API key")
            if row.revoked_at is not None:
                raise Unauthorized("this API key was revoked", code="revoked_api_key")
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized("this API key has expired", code="expired_api_key")
            caller = Caller(role=Role(row.role), key_id=row.id, node_id=row.node_id)
        if now - self._used.get(caller.key_id or "", 0.0) > LAST_USED_EVERY_S:
            self._used[caller.key_id or ""] = now
            with self.sessions.begin() as session:
                session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        return caller

    # -- enrolment ------------------------------------------------------------------------

    def create_token(
        self, expires_in_s: int | None, region: str | None, note: str, created_by: str | None
    ) -> TokenCreated:
        secret = secrets.new_secret()
        now = self.clock()
        expires = now + (expires_in_s or self.spec.enrollment_token_ttl_s)
        with self.sessions.begin() as session:
            session.add(
                EnrollmentToken(
                    id=secret.id,
                    secret_hash=secret.hash,
                    note=note,
                    region=region,
                    created_by=created_by,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return TokenCreated(
            id=secret.id,
            token=secret.reveal(secrets.TOKEN_PREFIX),
            expires_at=expires,
            region=region,
            note=note,
        )

    def revoke_token(self, token_id: str) -> TokenRevoked:
        """An enrolment token stops working at once (it expires now); one already used is
        a node: revoke the node instead (409)."""
        now = self.clock()
        with self.sessions.begin() as session:
            token = session.get(EnrollmentToken, token_id)
            if token is None:
                raise NotFound(f"no enrolment token {token_id!r}", param="token_id")
            if token.used_by is not None:
                raise Conflict(
                    f"token {token_id!r} enrolled node {token.used_by!r}; revoke the node",
                    code="token_used",
                )
            token.expires_at = min(token.expires_at, now)
            return TokenRevoked(id=token.id, expires_at=token.expires_at)

    def enroll(self, request: EnrollRequest) -> Enrollment:
        parsed = secrets.parse(request.token, secrets.TOKEN_PREFIX)
        now = self.clock()
        with self.sessions.begin() as session:
            token = session.get(EnrollmentToken, parsed.id) if parsed else None
            if (
                token is None
                or parsed is None
                or not secrets.matches(parsed.secret, token.secret_hash)
            ):
                raise Unauthorized("invalid enrolment token", code="invalid_enrollment_token")
            if token.used_at is not None:
                raise Conflict(
                    "this enrolment token was already used; ask an admin for a new one",
                    code="enrollment_token_used",
                    param="token",
                )
            if token.expires_at <= now:
                raise Unauthorized(
                    "this enrolment token has expired; ask an admin for a new one",
                    code="enrollment_token_expired",
                )
            node_id = f"node-{random.token_hex(6)}"
            fields = request.model_dump(exclude={"token"})
            if token.region:
                fields["region"] = token.region  # the admin's choice wins
            session.add(Node(id=node_id, enrolled_at=now, **fields))
            session.flush()
            # Marks the token used only if nobody did in between: one node per token.
            claimed = session.execute(
                update(EnrollmentToken)
                .where(EnrollmentToken.id == token.id, EnrollmentToken.used_at.is_(None))
                .values(used_at=now, used_by=node_id)
            )
            if claimed.rowcount != 1:
                raise Conflict(
                    "this enrolment token was already used", code="enrollment_token_used"
                )
            key = self._new_key(session, Role.node, f"node key of {request.name}", node_id, None)
        return Enrollment(
            node_id=node_id,
            node_key=key.key,
            signing_public_key=self.signing.public_key,
            heartbeat_interval_s=self.spec.heartbeat_interval_s,
        )

    # -- nodes ----------------------------------------------------------------------------

    def heartbeat(self, node_id: str, beat: HeartbeatIn, idempotency_key: str | None) -> bool:
        """Store a heartbeat; True when it is a retry of one already stored (same key)."""
        now = self.clock()
        if beat.measured_at is not None and beat.measured_at > now + CLOCK_SKEW_S:
            raise ValidationFailed(
                "measured_at is in the future; is the node's clock set?", param="measured_at"
            )
        status = beat.model_dump(exclude={"measured_at"})
        try:
            with self.sessions.begin() as session:
                node = self.live_node(session, node_id)
                region = node.region
                measured = min(beat.measured_at or now, now)
                session.add(
                    Heartbeat(
                        node_id=node_id,
                        received_at=now,
                        measured_at=measured,
                        idempotency_key=idempotency_key,
                        **status,
                    )
                )
                node.last_seen_at = now
                if node.last_status is None or measured >= node.last_status.get("measured_at", 0):
                    node.last_status = {**status, "measured_at": measured}
                if random.randbelow(50) == 0:  # now and then: history past retention goes
                    session.execute(
                        delete(Heartbeat).where(
                            Heartbeat.node_id == node_id,
                            Heartbeat.received_at < now - self.spec.heartbeat_retention_s,
                        )
                    )
        except IntegrityError:
            if idempotency_key is None:
                raise
            return True  # a retry of a heartbeat already stored
        _observe(beat, region)
        return False

    def live_node(self, session: Session, node_id: str) -> Node:
        """The node, if enrolled and not revoked (404 / 409 otherwise)."""
        node = session.get(Node, node_id)
        if node is None:
            raise NotFound(f"no node {node_id!r}", param="node_id")
        if node.revoked_at is not None:
            raise Conflict(f"node {node_id!r} was revoked", code="node_revoked")
        return node

    def state(self, node: Node, now: float | None = None) -> NodeState:
        now = self.clock() if now is None else now
        if node.revoked_at is not None:
            return "revoked"
        if node.last_seen_at is None:
            return "never_seen"
        quiet = now - node.last_seen_at
        if quiet >= self.spec.offline_after_s:
            return "offline"
        return "stale" if quiet >= self.spec.stale_after_s else "online"

    def _state_clause(self, state: NodeState, now: float) -> Any:
        stale, offline = now - self.spec.stale_after_s, now - self.spec.offline_after_s
        live = Node.revoked_at.is_(None)
        seen = Node.last_seen_at
        return {
            "revoked": Node.revoked_at.is_not(None),
            "never_seen": and_(live, seen.is_(None)),
            "offline": and_(live, seen < offline),
            "stale": and_(live, seen >= offline, seen < stale),
            "online": and_(live, seen >= stale),
        }[state]

    def census(self) -> dict[tuple[str, str], int]:
        """How many nodes are in each (state, region): one grouped count per state."""
        now = self.clock()
        counts: dict[tuple[str, str], int] = {}
        with self.sessions() as session:
            for state in ("online", "stale", "offline", "never_seen", "revoked"):
                rows = session.execute(
                    select(Node.region, func.count())
                    .where(self._state_clause(state, now))
                    .group_by(Node.region)
                )
                counts.update({(state, region): n for region, n in rows})
        return counts

    def list_nodes(
        self, states: list[NodeState], regions: list[str], offset: int, limit: int
    ) -> tuple[list[NodeOut], int]:
        now = self.clock()
        where = []
        if states:
            where.append(or_(*(self._state_clause(s, now) for s in states)))
        if regions:
            where.append(Node.region.in_(regions))
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(Node).where(*where)) or 0
            rows = session.scalars(
                select(Node).where(*where).order_by(Node.id).offset(offset).limit(limit)
            ).all()
            return [self._node_out(r, now) for r in rows], total

    def get_node(self, node_id: str, history: int = 20) -> NodeDetail:
        with self.sessions() as session:
            node = session.get(Node, node_id)
            if node is None:
                raise NotFound(f"no node {node_id!r}", param="node_id")
            beats = session.scalars(
                select(Heartbeat)
                .where(Heartbeat.node_id == node_id)
                .order_by(Heartbeat.measured_at.desc(), Heartbeat.id.desc())
                .limit(history)
            ).all()
            return NodeDetail(
                **self._node_out(node, self.clock()).model_dump(),
                heartbeats=[HeartbeatOut.model_validate(b, from_attributes=True) for b in beats],
            )

    def node_region(self, node_id: str) -> str:
        """The region a node enrolled in: one column, as answering a node reads it each time."""
        with self.sessions() as session:
            region = session.scalar(select(Node.region).where(Node.id == node_id))
            if region is None:
                raise NotFound(f"no node {node_id!r}", param="node_id")
            return region

    def open_stream(self, node_id: str) -> str:
        """A new alert stream for the node: its id, which replaces any stream it had."""
        stream = random.token_hex(8)
        with self.sessions.begin() as session:
            self.live_node(session, node_id).alert_stream = stream
        return stream

    def current_streams(self, keys: dict[str, str]) -> dict[str, str | None]:
        """For each node (node id -> the key its stream was opened with): the stream it may
        hold now, or None if the node or the key was revoked or the key has expired."""
        now = self.clock()
        found: dict[str, str | None] = dict.fromkeys(keys)
        with self.sessions() as session:
            rows = session.execute(
                select(Node.id, Node.alert_stream, ApiKey.id)
                .join(ApiKey, ApiKey.node_id == Node.id)
                .where(
                    Node.id.in_(list(keys)),
                    Node.revoked_at.is_(None),
                    ApiKey.revoked_at.is_(None),
                    or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
                )
            )
            for node_id, stream, key_id in rows:
                if keys[node_id] == key_id:
                    found[node_id] = stream
        return found

    def revoke_node(self, node_id: str) -> NodeOut:
        """The node and every key it holds stop working at once; its history stays."""
        now = self.clock()
        with self.sessions.begin() as session:
            node = session.get(Node, node_id)
            if node is None:
                raise NotFound(f"no node {node_id!r}", param="node_id")
            if node.revoked_at is None:
                node.revoked_at = now
            session.execute(
                update(ApiKey)
                .where(ApiKey.node_id == node_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return self._node_out(node, now)

    def set_maintenance_window(self, node_id: str, window: str | None) -> NodeOut:
        """When updates may be offered to the node ('HH:MM-HH:MM' UTC; None: any time)."""
        with self.sessions.begin() as session:
            node = session.get(Node, node_id)
            if node is None:
                raise NotFound(f"no node {node_id!r}", param="node_id")
            node.maintenance_window = window
            return self._node_out(node, self.clock())

    def _node_out(self, node: Node, now: float) -> NodeOut:
        return NodeOut.model_validate(
            {
                **{c.name: getattr(node, c.name) for c in Node.__table__.columns},
                "state": self.state(node, now),
            }
        )

    # -- replies given once ---------------------------------------------------------------

    def claim_reply(self, scope: str, key: str, route: str) -> tuple[int, Any] | None:
        """Reserve (caller, Idempotency-Key) before answering; or the reply already given.

        Reserving first means two overlapping retries cannot both be answered: the second
        gets 409 until the first is done, then the first one's reply. A reservation left by
        a replica that died mid-answer (no longer touched) is taken over after
        `PENDING_TIMEOUT_S`.
        """
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                session.add(
                    IdempotentReply(
                        scope=scope, key=key, route=route, status_code=0, body="", created_at=now
                    )
                )
            return None
        except IntegrityError:
            pass
        with self.sessions.begin() as session:
            row = session.scalar(
                select(IdempotentReply)
                .where(IdempotentReply.scope == scope, IdempotentReply.key == key)
                .with_for_update()
            )
            if row is None:  # released in between: try again
                return self.claim_reply(scope, key, route)
            if row.status_code:
                return row.status_code, json.loads(row.body)
            if now - row.created_at > PENDING_TIMEOUT_S:
                row.created_at = now
                return None
        raise Conflict(
            "a request with this Idempotency-Key is still being answered; retry shortly",
            code="idempotency_key_in_use",
            retry_after=5,
        )

    def touch_reply(self, scope: str, key: str) -> None:
        """The reservation is still being answered (see `PENDING_TIMEOUT_S`)."""
        with self.sessions.begin() as session:
            session.execute(
                update(IdempotentReply)
                .where(
                    IdempotentReply.scope == scope,
                    IdempotentReply.key == key,
                    IdempotentReply.status_code == 0,
                )
                .values(created_at=self.clock())
            )

    def release_reply(self, scope: str, key: str) -> None:
        """Give up a reservation (answering failed), so a retry is answered afresh."""
        with self.sessions.begin() as session:
            session.execute(
                delete(IdempotentReply).where(
                    IdempotentReply.scope == scope,
                    IdempotentReply.key == key,
                    IdempotentReply.status_code == 0,
                )
            )

    def record_escalation(self, reply: tuple[str, str, Any] | None = None, **fields: Any) -> None:
        """An answered escalation, and (scope, key, body) of its reply for retries: both in
        one transaction, so a retry never finds one without the other."""
        now = self.clock()
        question = fields.pop("question", None)
        # An emergency's words are the most personal an SMS holds, and analytics needs only
        # its kind.
        emergency = fields.get("outcome") == "emergency" or fields.get("emergency_kind")
        if question is not None and not emergency and self.spec.question_retention_s > 0:
            fields["question"] = redacted(question)
        with self.sessions.begin() as session:
            session.add(Escalation(received_at=now, **fields))
            if reply is not None:
                scope, key, body = reply
                session.execute(
                    update(IdempotentReply)
                    .where(IdempotentReply.scope == scope, IdempotentReply.key == key)
                    .values(status_code=200, body=json.dumps(body))
                )
            if random.randbelow(50) == 0:  # now and then, as heartbeats: the past goes
                self._forget_past(session, now)

    def forget_past(self) -> None:
        """What `record_escalation` does now and then, at once (operators, tests)."""
        with self.sessions.begin() as session:
            self._forget_past(session, self.clock())

    def _forget_past(self, session: Session, now: float) -> None:
        """Escalations past `escalation_retention_s`, their questions' text past
        `question_retention_s`, and replies kept for retries past `idempotency_retention_s` (a
        retry comes within minutes; a day is plenty)."""
        session.execute(
            delete(Escalation).where(
                Escalation.received_at < now - self.spec.escalation_retention_s
            )
        )
        session.execute(
            update(Escalation)
            .where(
                Escalation.received_at < now - self.spec.question_retention_s,
                Escalation.question.is_not(None),
            )
            .values(question=None)
        )
        session.execute(
            delete(IdempotentReply).where(
                IdempotentReply.created_at < now - self.spec.idempotency_retention_s
            )
        )


def _usable(now: float) -> tuple[Any, ...]:
    return (
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
    )


def _key_fields(row: ApiKey) -> dict[str, Any]:
    return {
        name: getattr(row, name)
        for name in (
            "id",
            "role",
            "name",
            "node_id",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "rotated_from",
        )
    }


def open_fleet(settings: Settings) -> FleetService:
    """The fleet database of these settings, its schema brought up to date first."""
    engine = make_engine(settings.metadata_url)
    upgrade(engine)
    return FleetService(
        engine, settings.fleet, SigningKey.load_or_create(settings.signing_key_file)
    )


def _observe(beat: HeartbeatIn, region: str) -> None:
    """A stored heartbeat's figures, for the fleet's distributions (by region, never by node)."""
    tags = {"region": region}
    metrics.HEARTBEATS.inc(tags=tags)
    metrics.NODE_OUTBOX.observe(beat.queue_depth, tags=tags)
    # What nodes answered themselves from FAQ entries, of the SMS they took: FAQ offload.
    if beat.sms_in:
        metrics.NODE_SMS.inc(beat.sms_in, tags={**tags, "kind": "received"})
    if beat.faq_answers:
        metrics.NODE_SMS.inc(beat.faq_answers, tags={**tags, "kind": "faq_answered"})
    if beat.battery_percent is not None:
        metrics.NODE_BATTERY.observe(beat.battery_percent, tags=tags)
    if beat.free_storage_mb is not None:
        metrics.NODE_FREE_STORAGE.observe(beat.free_storage_mb, tags=tags)
