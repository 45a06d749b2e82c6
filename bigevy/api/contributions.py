"""Wire models of edge contributions: local knowledge a node offers, and its review."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bigevy.api.knowledge import NonBlank
from bigevy.knowledge.taxonomy import Category


class ContributedDocument(BaseModel):
    """The prototype's shape: `{text, title, category, metadata}`."""

    model_config = ConfigDict(extra="forbid")

    text: NonBlank = Field(max_length=20_000)
    title: NonBlank = Field(max_length=500)
    category: Category = Category.community
    metadata: dict[str, Any] = Field(default={}, description="Kept for the reviewer.")


class ContributionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500, description="Shown to whoever reads the queue.")
    region: str | None = Field(
        None, max_length=100, description="Of the accepted document; default the node's."
    )
