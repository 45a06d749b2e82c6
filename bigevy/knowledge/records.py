"""What goes into the knowledge store and what comes out of it, without LanceDB.

Kept apart from `store.py` so the processes that only build or read these records (bulk
ingestion's parse tasks, connectors, the gateway) do not import LanceDB: 1.5 s of CPU per
Ray worker process, and a bulk load starts several at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from bigevy.knowledge.taxonomy import Category, Priority, Source

SearchMode = Literal["hybrid", "vector", "keyword"]


@dataclass
class DocumentIn:
    id: str
    title: str
    text: str
    category: Category
    source: Source
    url: str = ""
    region: str = "global"
    language: str = "en"
    priority: Priority = "normal"

    def content_hash(self) -> str:
        """Over everything a reader sees: the same hash means nothing to re-embed or resend."""
        fields = asdict(self)
        fields.pop("id")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


#: A document with its chunks and their vectors, ready to write.
Embedded = tuple[DocumentIn, list[str], list[list[float]]]


@dataclass(frozen=True)
class WriteResult:
    id: str
    status: Literal["added", "updated", "unchanged", "deleted"]
    version: int
    revision: int


@dataclass
class SearchFilters:
    categories: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    updated_after: float | None = None  # unix seconds

    def where(self) -> str | None:
        clauses = [
            f"{column} IN ({', '.join(sql_literal(v) for v in values)})"
            for column, values in (
                ("category", self.categories),
                ("source", self.sources),
                ("region", self.regions),
                ("language", self.languages),
            )
            if values
        ]
        if self.updated_after is not None:
            clauses.append(f"updated_at > {float(self.updated_after)}")
        return " AND ".join(clauses) or None


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    document_id: str
    title: str
    text: str
    url: str
    category: str
    source: str
    score: float
    #: Cosine similarity of the query to the document's best chunk; None when the search did
    #: not compare vectors (keyword mode) or the document was not in the vector list.
    similarity: float | None = None


def sql_literal(value: str) -> str:
    """A string as a LanceDB (DataFusion) SQL literal."""
    return "'" + value.replace("'", "''") + "'"
