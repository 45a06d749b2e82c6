"""The artifacts nodes install: each file stored once by its sha256, each described by a
document bigEVY signs (kind, version, size, sha256, hardware), which nodes verify before they
install anything. Plain and blocking, like `FleetService`; the gateway calls it from a thread.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bigevy.errors import Conflict, NotFound, ValidationFailed
from bigevy.fleet.models import Artifact, Rollout, RolloutNode
from bigevy.fleet.service import FleetService
from bigevy.http.updates.protocol import ArtifactOut
from bigevy.sync.package import Signed
from bigevy.updates.blobs import Blob, BlobStore

FORMAT = "bigevy-artifact/1"


class Artifacts:
    def __init__(self, fleet: FleetService, store: BlobStore) -> None:
        self.fleet = fleet
        self.store = store

    def add(
        self,
        blob: Blob,
        kind: str,
        version: str,
        name: str,
        hardware: Iterable[str],
        created_by: str | None,
    ) -> ArtifactOut:
        """Describe and sign a stored file; (kind, version) names one artifact only."""
        artifact_id = "art_" + random.token_hex(8)
        now = self.fleet.clock()
        document = {
            "format": FORMAT,
            "id": artifact_id,
            "kind": kind,
            "version": version,
            "name": name,
            "size": blob.size,
            "sha256": blob.sha256,
            "hardware": sorted(set(hardware)),
            "created_at": now,
        }
        signed = Signed.of(document, self.fleet.signing)
        with self.fleet.sessions.begin() as session:
            _check_free(session, kind, version)
            row = Artifact(
                id=artifact_id,
                kind=kind,
                version=version,
                name=name,
                size=blob.size,
                sha256=blob.sha256,
                hardware=document["hardware"],
                signed=signed.text,
                signature=signed.signature,
                created_at=now,
                created_by=created_by,
            )
            session.add(row)
        return _out(row, 0)

    def check_free(self, kind: str, version: str) -> None:
        """409 if (kind, version) names an artifact already."""
        with self.fleet.sessions() as session:
            _check_free(session, kind, version)

    def drop_unused(self, sha256: str) -> None:
        """Delete a stored file no artifact describes (an upload that failed late)."""
        with self.fleet.sessions() as session:
            used = session.scalar(
                select(func.count()).select_from(Artifact).where(Artifact.sha256 == sha256)
            )
        if not used:
            self.store.delete(sha256)

    def list(self) -> list[ArtifactOut]:
        with self.fleet.sessions() as session:
            uses = dict(
                session.execute(
                    select(Rollout.artifact_id, func.count()).group_by(Rollout.artifact_id)
                ).all()
            )
            rows = session.scalars(select(Artifact).order_by(Artifact.created_at.desc())).all()
            return [_out(r, uses.get(r.id, 0)) for r in rows]

    def get(self, artifact_id: str) -> ArtifactOut:
        with self.fleet.sessions() as session:
            row = _row(session, artifact_id)
            uses = session.scalar(
                select(func.count()).select_from(Rollout).where(Rollout.artifact_id == row.id)
            )
            return _out(row, uses or 0)

    def delete(self, artifact_id: str) -> None:
        """Gone with its file (unless another artifact has the same bytes). Refused while a
        rollout uses it: its record names the artifact, and nodes may still fetch it."""
        with self.fleet.sessions.begin() as session:
            row = _row(session, artifact_id)
            used = session.scalars(
                select(Rollout.id).where(Rollout.artifact_id == row.id).limit(3)
            ).all()
            if used:
                raise Conflict(
                    f"artifact {row.id} is used by rollout {', '.join(used)}; "
                    "a rollout's artifact is kept as its record",
                    param="artifact_id",
                )
            session.delete(row)
        self.drop_unused(row.sha256)

    def file(self, artifact_id: str, node_id: str | None) -> Blob:
        """The file to send; a node gets only what a rollout of its offered it."""
        with self.fleet.sessions() as session:
            row = _row(session, artifact_id)
            if node_id is not None:
                offered = session.scalar(
                    select(func.count())
                    .select_from(RolloutNode)
                    .join(Rollout, Rollout.id == RolloutNode.rollout_id)
                    .where(
                        Rollout.artifact_id == row.id,
                        RolloutNode.node_id == node_id,
                        RolloutNode.status != "pending",
                    )
                )
                if not offered:
                    raise NotFound(f"no artifact {artifact_id!r} was offered to this node")
        blob = Blob(row.sha256, row.size)
        if not self.store.exists(blob.sha256):
            raise NotFound(f"artifact {artifact_id}'s file is missing from the store")
        return blob

    def check(self, artifact_id: str) -> str | None:
        """What is wrong with an artifact's stored file, or None."""
        out = self.get(artifact_id)
        return self.store.check(Blob(out.sha256, out.size))


def check_upload(blob: Blob, sha256: str | None, size: int | None) -> None:
    """What the uploader said it sent, against what arrived."""
    if sha256 is not None and sha256.lower() != blob.sha256:
        raise ValidationFailed(
            f"the upload's sha256 is {blob.sha256}, not {sha256} as declared: "
            "the file changed or was cut on the way",
            param="sha256",
        )
    if size is not None and size != blob.size:
        raise ValidationFailed(
            f"the upload has {blob.size} bytes, not {size} as declared", param="size"
        )


def _check_free(session: Session, kind: str, version: str) -> None:
    taken = session.scalar(
        select(Artifact.id).where(Artifact.kind == kind, Artifact.version == version)
    )
    if taken:
        raise Conflict(f"{kind} version {version!r} is artifact {taken} already", param="version")


def _row(session: Session, artifact_id: str) -> Artifact:
    row = session.get(Artifact, artifact_id)
    if row is None:
        raise NotFound(f"no artifact {artifact_id!r}", param="artifact_id")
    return row


def _out(row: Artifact, uses: int) -> ArtifactOut:
    return ArtifactOut(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        version=row.version,
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        hardware=row.hardware,
        created_at=row.created_at,
        created_by=row.created_by,
        signed=row.signed,
        signature=row.signature,
        download_url=f"/v1/artifacts/{row.id}/file",
        rollouts=uses,
    )
