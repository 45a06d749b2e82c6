"""Wire models of edge contributions: local knowledge a node offers, and its review."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bigevy.http.knowledge.protocol import NonBlank
from bigevy.knowledge.taxonomy import Category

#: A contribution's metadata, as JSON: notes for the reviewer, not a second document.
METADATA_BYTES = 4096


class ContributedDocument(BaseModel):
    """The prototype's shape: `{text, title, category, metadata}`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text: NonBlank = Field(max_length=20_000)
    title: NonBlank = Field(max_length=500)
    category: Category = Category.community
    metadata: dict[str, Any] = Field(
        default={},
        description=f"Kept for the reviewer: at most {METADATA_BYTES} bytes as JSON.",
    )

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {METADATA_BYTES}")
        return value


class ContributionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    documents: list[ContributedDocument] = Field(min_length=1, max_length=50)


class ContributionOut(BaseModel):
    id: str
    node_id: str
    status: Literal["pending", "accepted", "rejected"]
    title: str
    text: str
    category: str
    metadata: dict[str, Any]
    received_at: float
    reviewed_at: float | None
    reason: str
    document_id: str | None = Field(description="The knowledge document once accepted.")


class ContributionsQueued(BaseModel):
    status: Literal["queued"] = "queued"
    count: int
    ids: list[str] = Field(description="A document sent again keeps its first id.")


class ContributionList(BaseModel):
    data: list[ContributionOut]
    total: int


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reason: str = Field("", max_length=500, description="Shown to whoever reads the queue.")
    region: str | None = Field(
        None, max_length=100, description="Of the accepted document; default the node's."
    )
    title: NonBlank | None = Field(
        None, max_length=500, description="Accept with this title (a reviewer's edit)."
    )
    text: NonBlank | None = Field(
        None, max_length=20_000, description="Accept with this text (a reviewer's edit)."
    )
