"""Edge sync: what each node should hold, the signed packages that take it there, and where
each node stands. Plain and blocking (SQLAlchemy, LanceDB, zstd); the deployment calls it from
worker threads.

A node's delta is computed against what it holds, not replayed from a log: what it holds is
the selection recorded with the package it last acknowledged (its "holdings"), what it should
hold is the selection from today's catalogue, and the package carries the difference: entries
new or changed since (the revision differs), and tombstones for entries deleted, out of its
subscription, or pushed out of its budget. That is "the changes since its revision, collapsed
to the latest state per entry", and stays right when the subscription or budget changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets as random
import time
from collections.abc import Callable
from pathlib import Path

import zstandard
from sqlalchemy import func, select

from bigevy import metrics
from bigevy.config import Settings
from bigevy.errors import Conflict, Forbidden, NotFound, ValidationFailed
from bigevy.fleet.models import Node, NodeSync, Package, Restore, Subscription
from bigevy.fleet.service import FleetService
from bigevy.http.sync.protocol import (
    AckIn,
    SignedManifest,
    SubscriptionIn,
    SubscriptionOut,
    SyncErrorIn,
    SyncState,
)
from bigevy.ops.files import write_atomically
from bigevy.sync import selection
from bigevy.sync.catalogue import CatalogueReader
from bigevy.sync.package import FORMAT, Signed, build_payload

log = logging.getLogger("ray.serve")
#: How often expired and superseded packages are removed.
PRUNE_EVERY_S = 600.0


class SyncService:
    def __init__(
        self,
        settings: Settings,
        fleet: FleetService,
        catalogue: CatalogueReader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = settings.sync
        self.fleet = fleet
        self.sessions = fleet.sessions
        self.catalogue = catalogue
        self.dir = settings.packages_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock

    # -- subscriptions ----------------------------------------------------------------------

    def subscription(self, node_id: str) -> SubscriptionOut:
        with self.sessions() as session:
            node = self.fleet.live_node(session, node_id)
            row = session.get(Subscription, node_id)
            if row is None:
                return SubscriptionOut(
                    node_id=node_id,
                    categories=[],
                    regions=[node.region],
                    languages=[],
                    budget_mb=self.spec.default_budget_mb,
                    shares=dict(self.spec.default_shares),
                    custom=False,
                )
            return SubscriptionOut(
                node_id=node_id,
                categories=row.categories,
                regions=row.regions or [node.region],
                languages=row.languages,
                budget_mb=row.budget_mb,
                shares=row.shares,
                custom=True,
            )

    def set_subscription(self, node_id: str, body: SubscriptionIn) -> SubscriptionOut:
        if body.budget_mb is not None and body.budget_mb > self.spec.max_budget_mb:
            raise ValidationFailed(
                f"budget_mb: at most {self.spec.max_budget_mb:g} MiB on this server",
                param="budget_mb",
            )
        with self.sessions.begin() as session:
            self.fleet.live_node(session, node_id)
            row = session.get(Subscription, node_id) or Subscription(node_id=node_id)
            row.categories = sorted(set(body.categories))
            row.regions = sorted(set(body.regions))
            row.languages = sorted(set(body.languages))
            row.budget_mb = body.budget_mb or self.spec.default_budget_mb
            row.shares = dict(body.shares or self.spec.default_shares)
            row.updated_at = self.clock()
            session.add(row)
        return self.subscription(node_id)

    def _selection_rules(self, node_id: str) -> selection.Subscription:
        sub = self.subscription(node_id)
        return selection.Subscription(
            categories=frozenset(sub.categories),
            regions=frozenset(sub.regions),
            languages=frozenset(sub.languages),
            budget_bytes=int(sub.budget_mb * 2**20),
            shares=sub.shares,
        )

    # -- packages ---------------------------------------------------------------------------

    def manifest(self, node_id: str, full: bool = False) -> SignedManifest | None:
        """The package that brings the node up to date (built if needed); None when it is.

        A package already built from the same acknowledged state to the same revision is
        handed out again, so a node resuming a download gets the same bytes.
        """
        # One function on purpose: which package a node gets is one decision, read in order.
        catalogue = self.catalogue.catalogue()
        now = self.clock()
        with self.sessions() as session:
            self.fleet.live_node(session, node_id)
            state = session.get(NodeSync, node_id)
            base = state.package_id if state and not full else None
            if base is not None and not self._holdings_path(base).exists():
                base = None  # its files were lost (a disk, a restore): a full snapshot
            kind = "delta" if base else "full"
            reusable = session.scalars(
                select(Package)
                .where(
                    Package.node_id == node_id,
                    Package.kind == kind,
                    Package.base_package_id.is_(None)
                    if base is None
                    else Package.base_package_id == base,
                    Package.to_revision == catalogue.revision,
                    Package.acked_at.is_(None),
                    Package.expires_at > now + 60,
                )
                .order_by(Package.created_at.desc())
                .limit(1)
            ).first()
            subscribed = session.get(Subscription, node_id)
            changed_since = subscribed is not None and (
                reusable is not None and subscribed.updated_at >= reusable.created_at
            )
            if reusable is not None and not changed_since:
                return self._signed(reusable)
        held = self._holdings(base) if base else {}
        wanted = selection.select(
            catalogue.live.values(), self._selection_rules(node_id), ordered=True
        )
        changed = sorted(i for i, e in wanted.items() if held.get(i) != e.revision)
        gone = sorted(set(held) - set(wanted))
        up_to_date = state is not None and state.knowledge_revision == catalogue.revision
        if kind == "delta" and up_to_date and not changed and not gone:
            return None
        records = self.catalogue.records(changed)
        lines: list[dict] = []
        holdings: dict[str, int] = {i: r for i, r in held.items() if i in wanted}
        for entry_id in changed:
            record = records.get(entry_id)
            if record is None:  # deleted since the catalogue was read: next package
                holdings.pop(entry_id, None)
                if entry_id in held:
                    lines.append({"op": "delete", "id": entry_id, "reason": "deleted"})
                continue
            lines.append({"op": "put", **record})
            holdings[entry_id] = wanted[entry_id].revision
        for entry_id in gone:
            reason = "deleted" if entry_id not in catalogue.live else "not_selected"
            lines.append({"op": "delete", "id": entry_id, "reason": reason})
        return self._build(
            node_id, kind, base, state, catalogue.revision, lines, holdings, wanted, now
        )

    def _build(
        self,
        node_id: str,
        kind: str,
        base: str | None,
        state: NodeSync | None,
        to_revision: int,
        lines: list[dict],
        holdings: dict[str, int],
        wanted: dict[str, selection.Entry],
        now: float,
    ) -> SignedManifest:
        # Long on purpose: the order of its writes (payload file, holdings, then the row that
        # makes the package visible) is what lets a crash leave no half-built package.
        payload = build_payload(lines)
        from_revision = state.knowledge_revision if (state and kind == "delta") else 0
        same = self._same_build(node_id, kind, base, to_revision, payload.sha256, now)
        if same is not None:  # a node switching back and forth stores each build once
            return same
        package_id = f"pkg-{random.token_hex(8)}"
        manifest = {
            "format": FORMAT,
            "package_id": package_id,
            "node_id": node_id,
            "kind": kind,
            "from_revision": from_revision,
            "to_revision": to_revision,
            "entry_count": len(lines),
            "put_count": sum(1 for line in lines if line["op"] == "put"),
            "delete_count": sum(1 for line in lines if line["op"] == "delete"),
            "payload_bytes": len(payload.data),
            "payload_uncompressed_bytes": payload.uncompressed_bytes,
            "payload_sha256": payload.sha256,
            "compression": "zstd",
            "held_entries": len(holdings),
            "held_bytes": sum(wanted[i].cost for i in holdings),
            "created_at": now,
            "expires_at": now + self.spec.package_ttl_s,
            "generation": self._generation(),
            "entries": payload.entries,
        }
        signed = Signed.of(manifest, self.fleet.signing)
        # Files first, then the row that points at them: a crash leaves unreferenced files.
        write_atomically(self._payload_path(package_id), payload.data)
        write_atomically(
            self._holdings_path(package_id),
            zstandard.ZstdCompressor().compress(json.dumps(holdings).encode()),
        )
        with self.sessions.begin() as session:
            session.add(
                Package(
                    id=package_id,
                    node_id=node_id,
                    kind=kind,
                    base_package_id=base,
                    from_revision=from_revision,
                    to_revision=to_revision,
                    entry_count=len(lines),
                    payload_bytes=len(payload.data),
                    payload_sha256=payload.sha256,
                    manifest=signed.text,
                    signature=signed.signature,
                    created_at=now,
                    expires_at=manifest["expires_at"],
                )
            )
        self._keep_latest(node_id, base)
        return SignedManifest(
            package_id=package_id,
            manifest=signed.text,
            signature=signed.signature,
            download_url=f"/v1/sync/packages/{package_id}",
        )

    def _same_build(
        self, node_id: str, kind: str, base: str | None, to_revision: int, sha256: str, now: float
    ) -> SignedManifest | None:
        """An unacknowledged package of the node with this very payload, if one is kept."""
        with self.sessions() as session:
            found = session.scalars(
                select(Package).where(
                    Package.node_id == node_id,
                    Package.kind == kind,
                    Package.base_package_id.is_(None)
                    if base is None
                    else Package.base_package_id == base,
                    Package.to_revision == to_revision,
                    Package.payload_sha256 == sha256,
                    Package.acked_at.is_(None),
                    Package.expires_at > now + 60,
                )
            ).first()
            return None if found is None else self._signed(found)

    def _keep_latest(self, node_id: str, base: str | None) -> None:
        """At most `max_packages_per_node` unacknowledged packages per node (the newest), so
        no node can make the server store snapshots without bound; its base stays."""
        with self.sessions.begin() as session:
            waiting = session.scalars(
                select(Package.id)
                .where(Package.node_id == node_id, Package.acked_at.is_(None))
                .order_by(Package.created_at.desc())
            ).all()
            doomed = [p for p in waiting[self.spec.max_packages_per_node :] if p != base]
            for package_id in doomed:
                session.delete(session.get(Package, package_id))
        for package_id in doomed:
            self._payload_path(package_id).unlink(missing_ok=True)
            self._holdings_path(package_id).unlink(missing_ok=True)

    def prune(self) -> int:
        """Remove packages no node needs: expired or superseded, and not a node's current base
        (whose holdings its next delta is cut from). Rows go first, then files."""
        now = self.clock()
        with self.sessions.begin() as session:
            bases = {p for p in session.scalars(select(NodeSync.package_id)) if p}
            doomed = [
                p.id
                for p in session.scalars(
                    select(Package).where(
                        (Package.expires_at <= now) | Package.acked_at.is_not(None)
                    )
                )
                if p.id not in bases
            ]
            for package_id in doomed:
                session.delete(session.get(Package, package_id))
        for package_id in doomed:
            self._payload_path(package_id).unlink(missing_ok=True)
            self._holdings_path(package_id).unlink(missing_ok=True)
        return len(doomed)

    def start_pruning(self, every_s: float = PRUNE_EVERY_S) -> None:
        """`prune` every `every_s` in a worker thread, until the event loop ends."""
        self._pruning = asyncio.get_running_loop().create_task(self._prune_forever(every_s))

    async def _prune_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                removed = await asyncio.to_thread(self.prune)
                if removed:
                    log.info("removed %d packages no node needs", removed)
            except Exception:
                log.exception("pruning packages failed; retried next round")

    def start_reporting(self, every_s: float = 15.0) -> None:
        """The sync-lag gauge, every `every_s`, until the event loop ends."""
        self._reporting = asyncio.get_running_loop().create_task(self._report_lag(every_s))

    async def _report_lag(self, every_s: float) -> None:
        while True:
            try:
                lags = [state.lag_s for state in await asyncio.to_thread(self.states)]
                for bound in metrics.SYNC_LAG_BOUNDS:
                    within = sum(1 for lag in lags if lag <= bound)
                    metrics.SYNC_LAG.set(within, tags={"le": f"{bound:g}"})
                metrics.SYNC_LAG.set(len(lags), tags={"le": "+Inf"})
            except Exception:
                log.exception("measuring the fleet's sync lag failed; trying again")
            await asyncio.sleep(every_s)

    def check_health(self) -> None:
        """The catalogue can be read (Serve replaces a replica that cannot)."""
        self.catalogue.revision()

    def _signed(self, package: Package) -> SignedManifest:
        return SignedManifest(
            package_id=package.id,
            manifest=package.manifest,
            signature=package.signature,
            download_url=f"/v1/sync/packages/{package.id}",
        )

    def package_file(self, node_id: str, package_id: str) -> Path:
        """The payload of one of the node's packages."""
        with self.sessions() as session:
            package = session.get(Package, package_id)
            if package is None or not self._payload_path(package_id).exists():
                raise NotFound(f"no package {package_id!r}", param="package_id")
            if package.node_id != node_id:
                raise Forbidden(f"package {package_id!r} was built for another node")
        return self._payload_path(package_id)

    def _payload_path(self, package_id: str) -> Path:
        return self.dir / f"{package_id}.zst"

    def _generation(self) -> int:
        """How often this bigEVY was restored from a backup (docs/package-format.md)."""
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Restore)) or 0

    def _holdings_path(self, package_id: str) -> Path:
        return self.dir / f"{package_id}.holdings.zst"

    def _holdings(self, package_id: str) -> dict[str, int]:
        data = self._holdings_path(package_id).read_bytes()
        return json.loads(zstandard.ZstdDecompressor().decompress(data))

    # -- acknowledgements and state ---------------------------------------------------------

    def ack(self, node_id: str, body: AckIn) -> SyncState:
        """The node applied the package: it now holds that package's selection."""
        now = self.clock()
        with self.sessions.begin() as session:
            self.fleet.live_node(session, node_id)
            package = session.get(Package, body.package_id)
            if package is None:
                raise Conflict(
                    f"package {body.package_id!r} was never sent", code="package_not_sent"
                )
            if package.node_id != node_id:
                raise Forbidden(f"package {body.package_id!r} was built for another node")
            if body.revision != package.to_revision:
                raise Conflict(
                    f"revision {body.revision} was never sent in package {package.id!r} "
                    f"(it takes the node to {package.to_revision})",
                    code="revision_not_sent",
                    param="revision",
                )
            if body.payload_sha256 != package.payload_sha256:
                raise Conflict(
                    "payload_sha256 is not the package's: the node applied other bytes",
                    code="checksum_mismatch",
                    param="payload_sha256",
                )
            state = session.get(NodeSync, node_id)
            if package.acked_at is None:
                current = state.package_id if state else None
                if package.kind == "delta" and package.base_package_id != current:
                    raise Conflict(
                        f"package {package.id!r} was built on knowledge the node no longer "
                        "holds; fetch a new manifest",
                        code="package_superseded",
                    )
                package.acked_at = now
                state = state or NodeSync(node_id=node_id)
                state.knowledge_revision = package.to_revision
                state.package_id = package.id
                state.acked_at = now
                state.updated_at = now
                state.last_error = None
                session.add(state)
            # else: a repeated ack of the package already applied; nothing changes
        return self.state(node_id)

    def report_error(self, node_id: str, body: SyncErrorIn) -> SyncState:
        now = self.clock()
        with self.sessions.begin() as session:
            self.fleet.live_node(session, node_id)
            state = session.get(NodeSync, node_id) or NodeSync(node_id=node_id, updated_at=now)
            prefix = f"{body.package_id}: " if body.package_id else ""
            state.last_error = (prefix + body.error)[:500]
            state.last_error_at = now
            session.add(state)
        return self.state(node_id)

    def state(self, node_id: str) -> SyncState:
        (state,) = self.states([node_id])
        return state

    def states(self, node_ids: list[str] | None = None) -> list[SyncState]:
        """Every (or these) enrolled node's sync state; revoked nodes are left out."""
        catalogue = self.catalogue.catalogue()
        now = self.clock()
        with self.sessions() as session:
            query = select(Node.id).where(Node.revoked_at.is_(None)).order_by(Node.id)
            if node_ids is not None:
                for node_id in node_ids:
                    self.fleet.live_node(session, node_id)
                query = query.where(Node.id.in_(node_ids))
            ids = list(session.scalars(query))
            sync_rows = select(NodeSync)
            unacked = (
                select(Package.node_id, Package.id)
                .where(Package.acked_at.is_(None), Package.expires_at > now)
                .order_by(Package.created_at)
            )
            if node_ids is not None:
                sync_rows = sync_rows.where(NodeSync.node_id.in_(ids))
                unacked = unacked.where(Package.node_id.in_(ids))
            rows = {s.node_id: s for s in session.scalars(sync_rows)}
            pending = dict(session.execute(unacked).all())  # the newest per node wins
        out = []
        for node_id in ids:
            row = rows.get(node_id)
            acked = row.knowledge_revision if row else 0
            oldest = catalogue.oldest_change_after(acked)
            out.append(
                SyncState(
                    node_id=node_id,
                    acked_revision=acked,
                    acked_package_id=row.package_id if row else None,
                    acked_at=row.acked_at if row else None,
                    current_revision=catalogue.revision,
                    lag_revisions=max(catalogue.revision - acked, 0),
                    lag_s=max(now - oldest, 0.0) if oldest is not None else 0.0,
                    pending_package_id=pending.get(node_id),
                    last_error=row.last_error if row else None,
                    last_error_at=row.last_error_at if row else None,
                )
            )
        return out
