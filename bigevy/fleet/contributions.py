"""The review queue of knowledge contributed by nodes: nothing a node sends reaches the global
knowledge base until a person accepts it. Plain and blocking (SQLAlchemy)."""

from __future__ import annotations

import hashlib
import json
import secrets as random
import time
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bigevy.errors import Conflict, NotFound
from bigevy.fleet.models import Contribution, Node
from bigevy.fleet.service import FleetService
from bigevy.http.contributions.protocol import ContributedDocument, ContributionOut


def _hash(doc: ContributedDocument) -> str:
    return hashlib.sha256(
        json.dumps(doc.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


class ContributionQueue:
    def __init__(self, fleet: FleetService, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.sessions = fleet.sessions
        self.clock = clock

    def submit(self, node_id: str, docs: list[ContributedDocument]) -> list[str]:
        """Queue each document once per node (the same one again keeps its first id). A node
        with `max_pending_contributions` awaiting review gets 409 until they are reviewed."""
        ids = []
        for doc in docs:
            digest = _hash(doc)
            try:
                with self.sessions.begin() as session:
                    self.fleet.live_node(session, node_id)
                    self._room(session, node_id, digest)
                    row = Contribution(
                        id=f"contrib-{random.token_hex(6)}",
                        node_id=node_id,
                        content_hash=digest,
                        status="pending",
                        title=doc.title,
                        text=doc.text,
                        category=str(doc.category),
                        extra=doc.metadata,
                        received_at=self.clock(),
                    )
                    session.add(row)
                ids.append(row.id)
            except IntegrityError:  # sent before (a retry): the first one stands
                with self.sessions() as session:
                    ids.append(
                        session.scalars(
                            select(Contribution.id).where(
                                Contribution.node_id == node_id,
                                Contribution.content_hash == digest,
                            )
                        ).one()
                    )
        return ids

    def _room(self, session: Session, node_id: str, digest: str) -> None:
        """Conflict if the node's pending contributions fill its share of the queue (a retry
        of one already queued is let through: it adds nothing)."""
        cap = self.fleet.spec.max_pending_contributions
        mine = select(func.count()).where(
            Contribution.node_id == node_id, Contribution.status == "pending"
        )
        if (session.scalar(mine) or 0) < cap:
            return
        again = select(Contribution.id).where(
            Contribution.node_id == node_id, Contribution.content_hash == digest
        )
        if session.scalar(again) is None:
            raise Conflict(
                f"node {node_id!r} has {cap} contributions awaiting review; offer more once "
                "an operator has reviewed them",
                code="review_queue_full",
            )

    def list(
        self, status: str | None, offset: int, limit: int
    ) -> tuple[list[ContributionOut], int]:
        with self.sessions() as session:
            query = select(Contribution)
            if status:
                query = query.where(Contribution.status == status)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(Contribution.received_at).offset(offset).limit(limit)
            )
            return [self._out(r) for r in rows], total

    def get(self, contribution_id: str) -> ContributionOut:
        with self.sessions() as session:
            return self._out(self._row(session, contribution_id))

    def begin_accept(self, contribution_id: str) -> tuple[ContributionOut, str]:
        """The contribution and its node's region, if it can still be accepted."""
        with self.sessions() as session:
            row = self._row(session, contribution_id)
            self._pending(row)
            return self._out(row), session.get(Node, row.node_id).region

    def decide(
        self,
        contribution_id: str,
        status: str,
        reviewer: str | None,
        reason: str,
        document_id: str | None = None,
    ) -> ContributionOut:
        """Decide a pending contribution. Compare-and-set in SQL: of an accept and a reject at
        the same moment one wins, and the other gets 409 (it read "pending" too)."""
        with self.sessions.begin() as session:
            decided = session.execute(
                update(Contribution)
                .where(Contribution.id == contribution_id, Contribution.status == "pending")
                .values(
                    status=status,
                    reason=reason,
                    document_id=document_id,
                    reviewed_at=self.clock(),
                    reviewed_by=reviewer,
                )
            )
            row = self._row(session, contribution_id)
            session.refresh(row)
            if decided.rowcount == 0 and not (
                row.status == status and row.document_id == document_id  # the same again
            ):
                self._pending(row)
            return self._out(row)

    def reopen(self, contribution_id: str) -> None:
        """Undo an acceptance whose document could not be written: pending again."""
        with self.sessions.begin() as session:
            session.execute(
                update(Contribution)
                .where(Contribution.id == contribution_id, Contribution.status == "accepted")
                .values(status="pending", document_id=None, reviewed_at=None, reviewed_by=None)
            )

    @staticmethod
    def _pending(row: Contribution) -> None:
        if row.status != "pending":
            raise Conflict(f"contribution {row.id!r} was already {row.status}", param="status")

    @staticmethod
    def _row(session: Session, contribution_id: str) -> Contribution:
        row = session.get(Contribution, contribution_id)
        if row is None:
            raise NotFound(f"no contribution {contribution_id!r}", param="contribution_id")
        return row

    @staticmethod
    def _out(row: Contribution) -> ContributionOut:
        return ContributionOut(
            id=row.id,
            node_id=row.node_id,
            status=row.status,
            title=row.title,
            text=row.text,
            category=row.category,
            metadata=row.extra,
            received_at=row.received_at,
            reviewed_at=row.reviewed_at,
            reason=row.reason,
            document_id=row.document_id,
        )
