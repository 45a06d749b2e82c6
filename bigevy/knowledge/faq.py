"""Frequently escalated questions: grouped by meaning per region and language, each group
keeping its best answer, so the most frequent ones can ship to the nodes as knowledge.

A question joins the nearest group of its region and language when their embeddings are at
least `similarity` apart in cosine; otherwise it starts a group. The best answer is the latest
grounded one (every sentence found in the documents it cites) over any ungrounded one, and a
group records those documents: when one of them changes or goes, the group is withdrawn (its
answer cleared until the next asking) and its published entry with it. Groups live in a LanceDB
table next to the knowledge base (one per embedding model, like the chunks); the knowledge
deployment, the one writer, owns it.
"""

from __future__ import annotations

import json
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
    sources: tuple[str, ...] = ()  # the ids of the documents its answer was taken from
    approved: bool = False  # an operator approved this answer (with `faq.review` on)

    @property
    def document_id(self) -> str:
        return faq_document_id(self.region, self.id)


def faq_document_id(region: str, group_id: str) -> str:
    """The id of a group's published entry. A region may hold what an id may not ("Kisumu
    County"): such an id once made the listing of every document fail validation on read."""
    return f"faq/{re.sub(r'[^A-Za-z0-9._:-]+', '-', region)}/{group_id}"


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
            pa.field("sources", pa.string()),  # a JSON list of document ids
            pa.field("approved", pa.bool_()),
        ]
    )


class FaqStore:
    def __init__(self, uri: str, embedding_model: str, dimensions: int) -> None:
        self.db = lancedb.connect(uri)
        name = "faq__" + re.sub(r"[^A-Za-z0-9_-]", "_", embedding_model)
        if name in self.db.table_names():
            self.table = self.db.open_table(name)
            if "sources" not in self.table.schema.names:  # a table from before sources
                self.table.add_columns({"sources": "CAST('[]' AS STRING)"})
            if "approved" not in self.table.schema.names:  # ... or before review
                self.table.add_columns({"approved": "CAST(false AS BOOLEAN)"})
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
        sources: list[str],
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
                    # An approval is of one text: a new answer waits for its own.
                    approved = bool(row.get("approved")) and answer == row["answer"]
                    values.update(
                        answer=answer,
                        grounded=grounded,
                        sources=json.dumps(sources),
                        approved=approved,
                    )
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
                    "sources": json.dumps(sources),
                    "approved": False,
                }
                self.table.add([row])
        return _group(row)

    def top(self, region: str, k: int) -> list[FaqGroup]:
        """The region's most asked groups (every language), most asked first."""
        rows = (
            self.table.search()
            .where(f"region = {sql_literal(region)}")
            .select(COLUMNS)
            .limit(None)
            .to_list()
        )
        rows.sort(key=lambda r: (-r["count"], -r["last_seen"], r["id"]))
        return [_group(r) for r in rows[:k]]

    def entries(self, region: str | None, limit: int | None) -> list[FaqGroup]:
        """Groups (of one region, or all), most asked first (`limit` None: all)."""
        query = self.table.search()
        if region is not None:
            query = query.where(f"region = {sql_literal(region)}")
        rows = query.select(COLUMNS).limit(None).to_list()
        rows.sort(key=lambda r: (-r["count"], -r["last_seen"], r["id"]))
        return [_group(r) for r in rows[:limit]]

    def counts(self) -> dict[str, int]:
        """`groups`, and of them `answered`: those holding an answer backed by its sources."""
        return {
            "groups": self.table.count_rows(),
            "answered": self.table.count_rows("grounded = true AND answer != ''"),
        }

    def entry(self, group_id: str) -> FaqGroup | None:
        where = f"id = {sql_literal(group_id)}"
        rows = self.table.search().where(where).select(COLUMNS).limit(1).to_list()
        return _group(rows[0]) if rows else None

    def withdraw(self, group_id: str) -> FaqGroup | None:
        """Clear one group's answer (an operator's call); the group as it was, if it exists."""
        found = self.entry(group_id)
        if found is not None:
            with self._lock:
                self.table.update(where=f"id = {sql_literal(group_id)}", values=WITHDRAWN)
        return found

    def approve(self, group_id: str, answer: str) -> FaqGroup | None:
        """Approve the group's answer if it is still `answer` (what the operator read); the
        group as it is now, if it exists."""
        where = f"id = {sql_literal(group_id)} AND answer = {sql_literal(answer)}"
        with self._lock:
            self.table.update(where=f"{where} AND grounded = true", values={"approved": True})
        return self.entry(group_id)

    def withdraw_citing(self, document_ids: list[str]) -> list[FaqGroup]:
        """The groups whose answer came from any of `document_ids`, as they were; their answers
        are cleared, to be taken again from the new sources at the next asking."""
        # Ids are quoted in the JSON list; "_" in an id matches any character here, which can
        # only withdraw more, never less.
        cited = " OR ".join(
            f"sources LIKE {sql_literal('%' + json.dumps(i) + '%')}" for i in document_ids
        )
        with self._lock:
            rows = self.table.search().where(cited).select(COLUMNS).limit(None).to_list()
            if rows:
                ids = ", ".join(sql_literal(r["id"]) for r in rows)
                self.table.update(where=f"id IN ({ids})", values=WITHDRAWN)
        return [_group(r) for r in rows]


#: A group with no answer: taken again from the sources at its next asking.
WITHDRAWN = {"answer": "", "grounded": False, "sources": "[]", "approved": False}
#: What is read of a group (not its vector).
COLUMNS = [
    "id",
    "region",
    "language",
    "question",
    "answer",
    "grounded",
    "count",
    "last_seen",
    "sources",
    "approved",
]


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
        tuple(json.loads(row.get("sources") or "[]")),
        bool(row.get("approved")),
    )
