"""Frequently escalated questions: grouped by meaning per region and language, each group
keeping its best answer, so the most frequent ones can ship to the nodes as knowledge.

A question joins the nearest group of its region and language when their embeddings are at
least `similarity` apart in cosine; otherwise it starts a group. The best answer is the latest
grounded one (cited knowledge) over any ungrounded one. Groups live in a LanceDB table next to
the knowledge base (one per embedding model, like the chunks); the knowledge deployment, the
one writer, owns it.
"""

from __future__ import annotations

import re
import secrets as random
import threading
import time
from dataclasses import dataclass
from typing import Any

import lancedb
import pyarrow as pa

from bigevy.knowledge.records import sql_literal


@dataclass(frozen=True)
class FaqGroup:
    id: str
    region: str
    language: str
    question: str
    answer: str  # the SMS-sized answer a node can send as it is
    grounded: bool
    count: int
    last_seen: float


def _schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("region", pa.string()),
            pa.field("language", pa.string()),
            pa.field("question", pa.string()),
            pa.field("answer", pa.string()),
            pa.field("grounded", pa.bool_()),
            pa.field("count", pa.int64()),
            pa.field("first_seen", pa.float64()),
            pa.field("last_seen", pa.float64()),
            pa.field("vector", pa.list_(pa.float32(), dimensions)),
        ]
    )


class FaqStore:
    def __init__(self, uri: str, embedding_model: str, dimensions: int) -> None:
        self.db = lancedb.connect(uri)
        name = "faq__" + re.sub(r"[^A-Za-z0-9_-]", "_", embedding_model)
        if name in self.db.table_names():
            self.table = self.db.open_table(name)
        else:
            self.table = self.db.create_table(name, schema=_schema(dimensions))
        self._lock = threading.Lock()

    def observe(
        self,
        question: str,
        vector: list[float],
        answer: str,
        grounded: bool,
        region: str,
        language: str,
        similarity: float,
    ) -> FaqGroup:
        """Count one more asking of `question`; the group it joined or started."""
        now = time.time()
        where = f"region = {sql_literal(region)} AND language = {sql_literal(language)}"
        with self._lock:
            nearest = (
                self.table.search(vector, query_type="vector")
                .metric("cosine")
                .where(where, prefilter=True)
                .limit(1)
                .to_list()
            )
            if nearest and 1.0 - nearest[0]["_distance"] >= similarity:
                row = nearest[0]
                better = grounded or not row["grounded"]
                values: dict[str, Any] = {"count": row["count"] + 1, "last_seen": now}
                if better:
                    values.update(answer=answer, grounded=grounded)
                self.table.update(where=f"id = {sql_literal(row['id'])}", values=values)
                row = {**row, **values}
            else:
                row = {
                    "id": f"faq-{random.token_hex(6)}",
                    "region": region,
                    "language": language,
                    "question": question,
                    "answer": answer,
                    "grounded": grounded,
                    "count": 1,
                    "first_seen": now,
                    "last_seen": now,
                    "vector": vector,
                }
                self.table.add([row])
        return _group(row)

    def top(self, region: str, k: int) -> list[FaqGroup]:
        """The region's most asked groups (every language), most asked first."""
        rows = (
            self.table.search()
            .where(f"region = {sql_literal(region)}")
            .select(
                ["id", "region", "language", "question", "answer", "grounded", "count", "last_seen"]
            )
            .limit(None)
            .to_list()
        )
        rows.sort(key=lambda r: (-r["count"], -r["last_seen"], r["id"]))
        return [_group(r) for r in rows[:k]]


def _group(row: dict[str, Any]) -> FaqGroup:
    return FaqGroup(
        row["id"],
        row["region"],
        row["language"],
        row["question"],
        row["answer"],
        bool(row["grounded"]),
        int(row["count"]),
        float(row["last_seen"]),
    )
