"""Wire models of the knowledge routes: documents in and out, and retrieval."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from bigevy.knowledge.records import Hit
from bigevy.knowledge.taxonomy import Category, Source


def _not_blank(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise ValueError(f"{info.field_name} must not be blank")
    return value


#: Text a caller must actually write: spaces alone are refused (422) like an empty string.
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class DocumentBody(BaseModel):
    """A document as a client writes it (its id comes from the URL on PUT)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, description="Plain text; chunked and embedded by bigEVY.")
    category: Category
    source: Source
    url: str = ""
    region: str = Field("global", min_length=1, max_length=100)
    language: str = Field("en", min_length=2, max_length=16)
    priority: Literal["critical", "high", "normal", "low"] = "normal"


class DocumentCreate(DocumentBody):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}$")


class DocumentReplace(DocumentBody):
    """A PUT's body: the id is the path's, so one in the body may only repeat it (a client that
    sends back the document it read, id included, is not refused)."""

    id: str | None = Field(None, description="Optional; must equal the id in the path.")


class DocumentOut(DocumentCreate):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    version: int
    revision: int
    content_hash: str
    created_at: float
    updated_at: float


class WriteOut(BaseModel):
    id: str
    status: Literal["added", "updated", "unchanged", "deleted"]
    version: int
    revision: int
    chunks: int | None = None


#: Documents per batch request: one embedding call, bounded.
MAX_BATCH = 256


class DocumentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    documents: list[DocumentCreate] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItem(BaseModel):
    id: str
    status: Literal["added", "updated", "unchanged", "failed"]
    version: int | None = None
    revision: int | None = None
    chunks: int | None = None
    error: str | None = None


class BatchResult(BaseModel):
    results: list[BatchItem]


class DocumentPage(BaseModel):
    data: list[DocumentOut]
    total: int
    offset: int
    limit: int


class IndexStatus(BaseModel):
    name: str
    type: str = Field(description="FTS, IvfPq, IvfHnswSq, ...")
    columns: list[str]
    indexed_rows: int
    unindexed_rows: int = Field(description="Searched without the index until the next upkeep.")


class KnowledgeStatus(BaseModel):
    documents: int
    tombstones: int
    chunks: int
    revision: int
    embedding_model: str
    dimensions: int
    indexes: list[IndexStatus]
    other_models: list[str] = Field(
        description="Chunks tables of earlier embedding models, dropped once re-embedded."
    )
    reembedding: dict[str, int] | None = Field(
        None, description="A re-embed in progress: documents done and still pending."
    )
    answer_cache: dict[str, int] | None = Field(
        None, description="Escalations answered again: entries, bytes, hits, misses (None: off)."
    )


class MaintenanceResult(BaseModel):
    done: list[str]
    status: KnowledgeStatus


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    query: NonBlank = Field(min_length=1, max_length=2000)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    top_k: int = Field(5, ge=1, le=100)
    categories: list[Category] = Field([], max_length=50)
    sources: list[Source] = Field([], max_length=50)
    regions: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=100)
    languages: list[Annotated[str, Field(max_length=16)]] = Field([], max_length=50)
    updated_after: float | None = Field(None, description="Unix seconds.")


class Citation(BaseModel):
    document_id: str
    title: str
    source: str
    url: str
    category: str = Field("", description="The document's knowledge category.")

    @classmethod
    def of(cls, hit: Hit) -> Citation:
        """The document a search hit came from."""
        return cls(
            document_id=hit.document_id,
            title=hit.title,
            source=hit.source,
            url=hit.url,
            category=hit.category,
        )


class SearchHit(BaseModel):
    chunk_id: str
    text: str
    score: float = Field(description="Rank score of the mode (hybrid: fused z-scores).")
    similarity: float | None = Field(
        None, description="Cosine of the query and its document's best chunk (vector, hybrid)."
    )
    category: str
    citation: Citation


class SearchResponse(BaseModel):
    query: str
    mode: str
    hits: list[SearchHit]
