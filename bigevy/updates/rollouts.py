"""Staged rollouts: an artifact offered to a fleet phase by phase, paused by its failures.

A rollout fixes its nodes and their phases when it is made (a hash of the rollout and node
ids orders them: each rollout has its own canaries, and the order never changes under it).
Nodes learn of it from their heartbeat reply's directives, within their maintenance window,
and report each step. A phase moves on when all its nodes settled (healthy or failed), or
after the soak time; never while its failures are over the threshold: a report that crosses
it pauses the rollout in the same transaction, so no node of a later phase is offered an
artifact that is failing. Every state change is an event with who made it.

Plain and blocking (SQLAlchemy sessions), like `FleetService`; each method is a transaction,
and the rollout row is locked while it changes, so gateway replicas agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets as random
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bigevy.config import UpdatesSpec
from bigevy.errors import Conflict, NotFound, ValidationFailed
from bigevy.fleet.models import Artifact, Node, Rollout, RolloutEvent, RolloutNode
from bigevy.fleet.service import FleetService
from bigevy.http.updates.protocol import (
    Action,
    Counts,
    RolloutCreate,
    RolloutDetail,
    RolloutEventOut,
    RolloutNodeOut,
    RolloutOut,
    RolloutReport,
    Target,
)

#: States in which a rollout still offers its artifact, or takes it back.
LIVE = ("active", "paused", "rolling_back")
#: Node statuses that end a node's part in a phase.
SETTLED = ("healthy", "failed", "rolled_back")
#: Statuses in which a node is (still) offered the artifact: until bigEVY hears how an
#: install ended, it offers it again (a node answers a repeated offer from its slots).
OFFERABLE = ("pending", "offered", "downloading", "installed")
#: Statuses of a node that runs the artifact, or may: what a rollback takes back.
INSTALLED = ("downloading", "installed", "healthy")
#: Which states each operator command leaves from, and where it goes.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("active",), "paused"),
    "resume": (("paused",), "active"),
    "abort": (("active", "paused"), "aborted"),
    "rollback": (("active", "paused", "completed", "aborted"), "rolling_back"),
}
BIGEVY = "bigevy"
log = logging.getLogger("ray.serve")


class Rollouts:
    def __init__(self, fleet: FleetService, spec: UpdatesSpec) -> None:
        self.fleet = fleet
        self.spec = spec
        self.sessions = fleet.sessions

    # -- operators --------------------------------------------------------------------------

    def create(self, body: RolloutCreate, key_id: str | None) -> RolloutDetail:
        now = self.fleet.clock()
        rollout_id = "ro_" + random.token_hex(8)
        with self.sessions.begin() as session:
            artifact = session.get(Artifact, body.artifact_id)
            if artifact is None:
                raise NotFound(f"no artifact {body.artifact_id!r}", param="artifact_id")
            nodes = _targeted(session, body.to, artifact)
            busy = session.execute(
                select(RolloutNode.node_id, Rollout.id)
                .join(Rollout, Rollout.id == RolloutNode.rollout_id)
                .where(
                    Rollout.kind == artifact.kind,
                    Rollout.state.in_(LIVE),
                    RolloutNode.node_id.in_(nodes),
                )
                .limit(1)
            ).first()
            if busy:
                raise Conflict(
                    f"node {busy[0]} is in rollout {busy[1]} of a {artifact.kind} already: "
                    "finish, abort or roll that back first",
                    param="to",
                )
            rollout = Rollout(
                id=rollout_id,
                artifact_id=artifact.id,
                kind=artifact.kind,
                target=body.to.model_dump(),
                phases=body.phases,
                phase=0,
                state="active",
                reason="",
                pause_above=self.spec.pause_above if body.pause_above is None else body.pause_above,
                soak_s=self.spec.soak_s if body.soak_s is None else body.soak_s,
                auto_rollback=body.auto_rollback,
                accepted_failures=0,
                phase_started_at=now,
                created_at=now,
                updated_at=now,
                created_by=key_id,
            )
            session.add(rollout)
            session.flush()
            for node_id, phase in phases_of(rollout_id, nodes, body.phases).items():
                session.add(
                    RolloutNode(
                        rollout_id=rollout_id,
                        node_id=node_id,
                        phase=phase,
                        status="pending",
                        detail="",
                        updated_at=now,
                    )
                )
            what = f"{artifact.kind} {artifact.version} to {len(nodes)} nodes"
            _event(session, rollout, now, _actor(key_id), "created", what)
        return self.get(rollout_id)

    def command(
        self, rollout_id: str, action: Action, key_id: str | None, reason: str
    ) -> RolloutDetail:
        """Pause, resume, abort or roll back; refused (409) from a state it cannot leave."""
        sources, target = COMMANDS[action]
        now = self.fleet.clock()
        with self.sessions.begin() as session:
            rollout = _rollout(session, rollout_id, lock=True)
            if rollout.state not in sources:
                raise Conflict(
                    f"rollout {rollout_id} is {rollout.state}: it cannot {action}",
                    param="rollout_id",
                )
            if action == "resume":  # the failures seen so far are the operator's call now
                rollout.accepted_failures = _counts(session, rollout.id)["failed"]
                rollout.phase_started_at = now
            rollout.reason = reason
            _set_state(session, rollout, target, now, _actor(key_id), action, reason)
            self._advance(session, rollout, now)
        return self.get(rollout_id)

    def get(self, rollout_id: str) -> RolloutDetail:
        with self.sessions() as session:
            rollout = _rollout(session, rollout_id)
            events = session.scalars(
                select(RolloutEvent)
                .where(RolloutEvent.rollout_id == rollout_id)
                .order_by(RolloutEvent.id)
            ).all()
            return RolloutDetail(
                **self._out(session, rollout).model_dump(),
                events=[
                    RolloutEventOut(at=e.at, actor=e.actor, event=e.event, detail=e.detail)
                    for e in events
                ],
            )

    def list(self, state: str | None = None) -> list[RolloutOut]:
        with self.sessions() as session:
            query = select(Rollout).order_by(Rollout.created_at.desc())
            if state is not None:
                query = query.where(Rollout.state == state)
            return [self._out(session, r) for r in session.scalars(query).all()]

    def nodes(self, rollout_id: str, status: str | None = None) -> list[RolloutNodeOut]:
        with self.sessions() as session:
            _rollout(session, rollout_id)
            query = (
                select(RolloutNode)
                .where(RolloutNode.rollout_id == rollout_id)
                .order_by(RolloutNode.phase, RolloutNode.node_id)
            )
            if status is not None:
                query = query.where(RolloutNode.status == status)
            return [_member_out(n) for n in session.scalars(query).all()]

    # -- nodes ------------------------------------------------------------------------------

    def directives_for(self, node_id: str) -> list[dict[str, Any]]:
        """What the node should install or take back now (heartbeat reply directives). An
        update waits for the node's maintenance window; a rollback does not."""
        now = self.fleet.clock()
        with self.sessions.begin() as session:
            rows = session.execute(
                select(RolloutNode, Rollout, Artifact)
                .join(Rollout, Rollout.id == RolloutNode.rollout_id)
                .join(Artifact, Artifact.id == Rollout.artifact_id)
                .where(
                    RolloutNode.node_id == node_id,
                    RolloutNode.status.in_(set(OFFERABLE + INSTALLED)),
                    Rollout.state.in_(("active", "rolling_back")),
                )
            ).all()
            if not rows:
                return []
            window = session.scalar(select(Node.maintenance_window).where(Node.id == node_id))
            directives = []
            for member, rollout, artifact in rows:
                if rollout.state == "rolling_back":
                    if member.status in INSTALLED:
                        directives.append(_rollback(rollout, artifact))
                elif (
                    member.status in OFFERABLE
                    and member.phase <= rollout.phase
                    and in_window(window, now % 86400)
                ):
                    if member.status == "pending":
                        member.status, member.offered_at, member.updated_at = "offered", now, now
                    directives.append(_update(rollout, artifact))
            return directives

    def report(self, rollout_id: str, node_id: str, body: RolloutReport) -> RolloutNodeOut:
        """A node's step; a failure past the threshold pauses the rollout at once."""
        now = self.fleet.clock()
        with self.sessions.begin() as session:
            rollout = _rollout(session, rollout_id, lock=True)
            member = session.get(RolloutNode, (rollout_id, node_id))
            if member is None:
                raise NotFound(f"this node is not in rollout {rollout_id}", param="rollout_id")
            if member.status == "pending":
                raise Conflict(f"rollout {rollout_id} has not offered this node anything yet")
            changed = member.status != body.status
            member.status, member.detail, member.updated_at = body.status, body.detail, now
            if changed and body.status in ("failed", "rolled_back"):
                _event(session, rollout, now, f"node:{node_id}", body.status, body.detail)
            self._advance(session, rollout, now)
            return _member_out(member)

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> int:
        """Move on every rollout whose phase soaked or settled; how many changed state."""
        now = self.fleet.clock()
        with self.sessions() as session:
            ids = session.scalars(
                select(Rollout.id).where(Rollout.state.in_(("active", "rolling_back")))
            ).all()
        changed = 0
        for rollout_id in ids:
            with self.sessions.begin() as session:
                rollout = _rollout(session, rollout_id, lock=True)
                before = (rollout.state, rollout.phase)
                self._advance(session, rollout, now)
                changed += (rollout.state, rollout.phase) != before
        return changed

    def _advance(self, session: Session, rollout: Rollout, now: float) -> None:
        """Pause on failures, move to the next phase, or finish: as far as the facts allow."""
        session.flush()
        while True:
            if rollout.state == "rolling_back":
                if not _counts(session, rollout.id, statuses=INSTALLED):
                    _set_state(session, rollout, "rolled_back", now, BIGEVY, "rolled_back", "")
                return
            if rollout.state != "active":
                return
            reached = _counts(session, rollout.id, up_to=rollout.phase)
            total = sum(reached.values())
            failed = reached["failed"] - rollout.accepted_failures
            if failed > 0 and failed / max(total, 1) > rollout.pause_above:
                why = (
                    f"{failed} of {total} nodes failed "
                    f"(over {rollout.pause_above * 100:g}%) in phase {rollout.phase + 1}"
                )
                rollout.reason = why
                _set_state(session, rollout, "paused", now, BIGEVY, "paused", why)
                if rollout.auto_rollback:
                    _set_state(session, rollout, "rolling_back", now, BIGEVY, "rollback", why)
                    continue
                return
            settled = sum(reached[s] for s in SETTLED) == total
            last = rollout.phase == len(rollout.phases) - 1
            soaked = rollout.soak_s > 0 and now - rollout.phase_started_at >= rollout.soak_s
            if last:
                if settled:
                    _set_state(session, rollout, "completed", now, BIGEVY, "completed", "")
                return
            if not (settled or soaked):
                return
            rollout.phase += 1
            rollout.phase_started_at = rollout.updated_at = now
            why = "every node settled" if settled else f"soaked {rollout.soak_s:g} s"
            _event(
                session,
                rollout,
                now,
                BIGEVY,
                "phase",
                f"phase {rollout.phase + 1} ({rollout.phases[rollout.phase]:g}%): {why}",
            )

    def _out(self, session: Session, rollout: Rollout) -> RolloutOut:
        artifact = session.get(Artifact, rollout.artifact_id)
        assert artifact is not None  # an artifact a rollout uses is never deleted
        counts = _counts(session, rollout.id)
        reached = _counts(session, rollout.id, up_to=rollout.phase)
        return RolloutOut(
            id=rollout.id,
            artifact_id=rollout.artifact_id,
            kind=rollout.kind,  # type: ignore[arg-type]
            version=artifact.version,
            target=Target(**rollout.target),
            phases=rollout.phases,
            phase=rollout.phase,
            state=rollout.state,  # type: ignore[arg-type]
            reason=rollout.reason,
            pause_above=rollout.pause_above,
            soak_s=rollout.soak_s,
            auto_rollback=rollout.auto_rollback,
            nodes=sum(counts.values()),
            reached=sum(reached.values()),
            counts=Counts(**counts),
            phase_started_at=rollout.phase_started_at,
            created_at=rollout.created_at,
            updated_at=rollout.updated_at,
            created_by=rollout.created_by,
        )


def phases_of(rollout_id: str, node_ids: list[str], phases: list[float]) -> dict[str, int]:
    """Each node's phase: the first `phases[k]` percent of the rollout's order are in phase
    k or earlier (at least one node in the first phase)."""
    order = sorted(node_ids, key=lambda n: hashlib.sha256(f"{rollout_id}:{n}".encode()).hexdigest())
    cuts = [max(1, math.ceil(p / 100 * len(order))) for p in phases]
    assigned, start = {}, 0
    for phase, cut in enumerate(cuts):
        for node_id in order[start:cut]:
            assigned[node_id] = phase
        start = max(start, cut)
    return assigned


def in_window(window: str | None, seconds_of_day: float) -> bool:
    """Whether a UTC time of day lies in `window` ('HH:MM-HH:MM', may wrap; None: always)."""
    if not window:
        return True
    start, end = (int(t[:2]) * 3600 + int(t[3:]) * 60 for t in window.split("-"))
    if start <= end:
        return start <= seconds_of_day < end
    return seconds_of_day >= start or seconds_of_day < end


def _targeted(session: Session, to: Target, artifact: Artifact) -> list[str]:
    """The enrolled, unrevoked nodes `to` names that can run `artifact`."""
    query = select(Node.id, Node.hardware).where(Node.revoked_at.is_(None))
    if to.regions:
        query = query.where(Node.region.in_(to.regions))
    if to.hardware:
        query = query.where(Node.hardware.in_(to.hardware))
    if to.nodes:
        query = query.where(Node.id.in_(to.nodes))
    rows = session.execute(query.order_by(Node.id)).all()
    nodes = [n for n, hw in rows if not artifact.hardware or hw in artifact.hardware]
    if not nodes:
        runs_on = f" running {', '.join(artifact.hardware)}" if artifact.hardware else ""
        raise ValidationFailed(
            f"the rollout targets no nodes: no enrolled node{runs_on} matches {_named(to)}",
            param="to",
        )
    return nodes


def _named(to: Target) -> str:
    parts = [f"{k}={','.join(v)}" for k, v in to.model_dump().items() if v and k != "all"]
    return " and ".join(parts) or "all"


def _counts(
    session: Session,
    rollout_id: str,
    up_to: int | None = None,
    statuses: tuple[str, ...] | None = None,
) -> Counter[str]:
    query = (
        select(RolloutNode.status, func.count())
        .where(RolloutNode.rollout_id == rollout_id)
        .group_by(RolloutNode.status)
    )
    if up_to is not None:
        query = query.where(RolloutNode.phase <= up_to)
    if statuses is not None:
        query = query.where(RolloutNode.status.in_(statuses))
    counts: Counter[str] = Counter()
    counts.update(dict(session.execute(query).all()))
    if statuses is not None:
        return Counter({k: v for k, v in counts.items() if v})
    return counts


def _update(rollout: Rollout, artifact: Artifact) -> dict[str, Any]:
    return {
        "type": "artifact_update",
        "detail": {
            "rollout_id": rollout.id,
            "kind": artifact.kind,
            "version": artifact.version,
            "artifact": {"signed": artifact.signed, "signature": artifact.signature},
            "download_url": f"/v1/artifacts/{artifact.id}/file",
            "report_url": f"/v1/rollouts/{rollout.id}/report",
        },
    }


def _rollback(rollout: Rollout, artifact: Artifact) -> dict[str, Any]:
    return {
        "type": "artifact_rollback",
        "detail": {
            "rollout_id": rollout.id,
            "kind": artifact.kind,
            "version": artifact.version,
            "report_url": f"/v1/rollouts/{rollout.id}/report",
        },
    }


def _actor(key_id: str | None) -> str:
    return f"key:{key_id}" if key_id else "operator"


def _rollout(session: Session, rollout_id: str, lock: bool = False) -> Rollout:
    """The rollout row; with `lock`, locked until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway)."""
    rollout = session.get(Rollout, rollout_id, with_for_update=lock)
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id!r}", param="rollout_id")
    return rollout


def _member_out(member: RolloutNode) -> RolloutNodeOut:
    return RolloutNodeOut(
        node_id=member.node_id,
        phase=member.phase,
        status=member.status,  # type: ignore[arg-type]
        detail=member.detail,
        offered_at=member.offered_at,
        updated_at=member.updated_at,
    )


def _set_state(
    session: Session,
    rollout: Rollout,
    state: str,
    now: float,
    actor: str,
    event: str,
    detail: str,
) -> None:
    rollout.state, rollout.updated_at = state, now
    _event(session, rollout, now, actor, event, detail)


def _event(
    session: Session, rollout: Rollout, now: float, actor: str, event: str, detail: str
) -> None:
    session.add(
        RolloutEvent(rollout_id=rollout.id, at=now, actor=actor, event=event, detail=detail[:500])
    )


async def move_rollouts(rollouts: Rollouts, every_s: float) -> None:
    """`Rollouts.tick` now and then, for phases that move on by time alone (a soak)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(rollouts.tick)
        except Exception as exc:  # a database blip must not end the loop
            log.warning("moving rollouts on failed: %r", exc)
