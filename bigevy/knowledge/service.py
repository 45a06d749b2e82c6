"""The knowledge base as callers use it: documents in (chunked, embedded, stored), search out.

Independent of Ray: it embeds through `embed` coroutines (documents through a Serve handle in
production; queries through the handle or a model loaded beside the store). LanceDB calls are
blocking, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from bigevy import metrics
from bigevy.answers.cache import AnswerCache
from bigevy.answers.sentences import comparable, prose_sentences
from bigevy.config import KnowledgeSpec
from bigevy.errors import Conflict, NotFound, PayloadTooLarge
from bigevy.knowledge.chunking import document_chunks
from bigevy.knowledge.faq import FaqGroup, FaqStore
from bigevy.knowledge.records import (
    DocumentIn,
    Embedded,
    Hit,
    SearchFilters,
    SearchMode,
    WriteResult,
)
from bigevy.knowledge.store import KnowledgeStore

log = logging.getLogger("ray.serve")
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
#: How far apart the clocks of the replica that answered and this one may be (s).
CLOCK_SKEW_S = 1.0


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored document row as `DocumentIn` arguments."""
    return {name: row[name] for name in DocumentIn.__dataclass_fields__}


class KnowledgeService:
    def __init__(
        self,
        store: KnowledgeStore,
        embed: Embed,
        spec: KnowledgeSpec,
        faq: FaqStore | None = None,
        embed_query: Embed | None = None,
    ) -> None:
        self.store = store
        self.embed = embed
        #: Must make the same vectors as `embed`; one text per call.
        self.embed_query = embed_query or embed
        self.spec = spec
        self.faq = faq
        cache = spec.answer_cache
        self.answers = (
            AnswerCache(int(cache.max_mb * 2**20), cache.similarity, cache.word_overlap)
            if cache.enabled
            else None
        )
        #: Progress of a running re-embed ({"done", "pending"} documents), else None.
        self.reembedding: dict[str, int] | None = None

    # -- upkeep: the sole writer's background work ------------------------------------------

    def start_upkeep(self) -> None:
        """Keep the indexes current, and re-embed after a change of embedding model."""
        loop = asyncio.get_running_loop()
        self._upkeep = (
            loop.create_task(self._keep_indexes_current()),
            loop.create_task(self._reembed_if_needed()),
            loop.create_task(self._report_sizes()),
        )

    async def _report_sizes(self, every_s: float = 15.0) -> None:
        """The knowledge gauges (bigevy/metrics.py), from the one writer."""
        while True:
            try:
                stats = await self.stats()
                unindexed = sum(i["unindexed_rows"] for i in stats["indexes"])
                pending = (self.reembedding or {}).get("pending", 0)
                for measure, value in (
                    *((k, stats[k]) for k in ("documents", "tombstones", "chunks", "revision")),
                    ("unindexed_rows", unindexed),
                    ("reembed_pending", pending),
                ):
                    metrics.KNOWLEDGE.set(value, tags={"measure": measure})
                for measure, value in (stats["answer_cache"] or {}).items():
                    metrics.ANSWER_CACHE.set(value, tags={"measure": measure})
                if self.faq is not None:
                    for measure, value in (await asyncio.to_thread(self.faq.counts)).items():
                        metrics.FAQ.set(value, tags={"measure": measure})
            except Exception:
                log.exception("reporting the knowledge base's sizes failed; trying again")
            await asyncio.sleep(every_s)

    async def _keep_indexes_current(self) -> None:
        """New rows reach the indexes within one interval of being written."""
        maintained = 0
        while True:
            await asyncio.sleep(self.spec.maintenance_interval_s)
            writes = self.store.writes
            if writes == maintained:
                continue
            try:
                done = await self.maintain()
                maintained = writes
                log.info("knowledge upkeep after %d writes: %s", writes, ", ".join(done))
            except Exception:
                log.exception("knowledge upkeep failed; retrying next interval")

    async def _reembed_if_needed(self) -> None:
        """After a change of embedding model, every document gets the new model's vectors."""
        try:
            if await asyncio.to_thread(self.store.missing_chunks):
                log.warning("re-embedding the knowledge base with %s", self.store.embedding_model)
                done = await self.reembed()
                log.warning("re-embedded %d documents", done)
            elif self.store.other_models():
                await asyncio.to_thread(self.store.drop_other_models)
        except Exception:
            log.exception("re-embedding stopped; it resumes where it was at the next start")

    # -- documents ------------------------------------------------------------------------

    async def put(self, doc: DocumentIn) -> tuple[WriteResult, int | None]:
        """Write a document; the same content again is a no-op (nothing re-embedded)."""
        (outcome,) = await self.put_many([doc])
        if isinstance(outcome, PayloadTooLarge):
            raise outcome
        return outcome

    async def put_many(
        self, docs: list[DocumentIn]
    ) -> list[tuple[WriteResult, int | None] | PayloadTooLarge]:
        """Write documents in order, embedding all their new chunks in one call.

        Each gets its own outcome: (result, chunks written; None when unchanged) or the error
        that refused it alone. An id sent twice is written twice, the later content last.
        """
        outcomes: list[tuple[WriteResult, int | None] | PayloadTooLarge | None] = []
        kept = await asyncio.to_thread(self.store.unchanged, docs)
        pending: list[tuple[int, DocumentIn, list[str]]] = []
        for doc in docs:
            if len(doc.text) > self.spec.max_document_chars:
                outcomes.append(
                    PayloadTooLarge(
                        f"document {doc.id!r} is {len(doc.text)} characters; the limit is "
                        f"{self.spec.max_document_chars}",
                        param="text",
                    )
                )
            elif doc.id in kept and doc.id not in {d.id for _, d, _ in pending}:
                outcomes.append((kept[doc.id], None))
            else:
                pending.append((len(outcomes), doc, self.chunk(doc)))
                outcomes.append(None)
        texts = [c for _, _, chunks in pending for c in chunks]
        vectors = iter(await self.embed(texts) if texts else [])
        batch: list[tuple[int, Embedded]] = []
        for index, doc, chunks in pending:
            if doc.id in {item[0].id for _, item in batch}:
                await self._write(batch, outcomes)
            batch.append((index, (doc, chunks, [next(vectors) for _ in chunks])))
        await self._write(batch, outcomes)
        for outcome in outcomes:
            if isinstance(outcome, tuple):
                metrics.DOCUMENT_WRITES.inc(tags={"status": outcome[0].status})
        return [o for o in outcomes if o is not None]

    def chunk(self, doc: DocumentIn) -> list[str]:
        return document_chunks(doc.title, doc.text, self.spec.chunk_size, self.spec.chunk_overlap)

    async def _write(
        self,
        batch: list[tuple[int, Embedded]],
        outcomes: list[tuple[WriteResult, int | None] | PayloadTooLarge | None],
    ) -> None:
        """One store write for `batch`, whose ids are distinct; empties it."""
        if not batch:
            return
        results = await asyncio.to_thread(self.store.upsert_many, [item for _, item in batch])
        for (index, (_, chunks, _)), result in zip(batch, results, strict=True):
            outcomes[index] = (result, None if result.status == "unchanged" else len(chunks))
        batch.clear()
        await self._changed([r.id for r in results if r.status != "unchanged"])

    async def get(self, document_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(self.store.get, document_id)
        if found is None:
            raise NotFound(f"no document {document_id!r}", param="id")
        return found

    async def list_documents(
        self, filters: SearchFilters, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await asyncio.to_thread(
            self.store.list_documents, filters, offset=offset, limit=limit
        )

    async def delete(self, document_id: str) -> WriteResult:
        result = await asyncio.to_thread(self.store.delete, document_id)
        if result is None:
            raise NotFound(f"no document {document_id!r}", param="id")
        metrics.DOCUMENT_WRITES.inc(tags={"status": "deleted"})
        await self._changed([document_id])
        return result

    async def unchanged_ids(self, docs: list[DocumentIn]) -> list[str]:
        """Which of `docs` the store already holds as they are (bulk ingestion skips them)."""
        return list(await asyncio.to_thread(self.store.unchanged, docs))

    async def write_embedded(
        self, items: list[Embedded], embedding_model: str
    ) -> list[WriteResult]:
        """Write documents a bulk job chunked and embedded itself, in one batch."""
        if embedding_model != self.store.embedding_model:
            raise Conflict(
                f"vectors made by {embedding_model!r}; this knowledge base holds "
                f"{self.store.embedding_model!r} vectors",
                param="embedding_model",
            )
        results = await asyncio.to_thread(self.store.upsert_many, items)
        await self._changed([r.id for r in results if r.status != "unchanged"])
        return results

    async def reembed(self, batch: int = 64) -> int:
        """Give every live document chunks embedded by the current model, then drop other
        models' chunks. Resumable: the work left is read from the store, not remembered."""
        done = 0
        while missing := await asyncio.to_thread(self.store.missing_chunks):
            self.reembedding = {"done": done, "pending": len(missing)}
            before = done
            for start in range(0, len(missing), batch):
                rows = await asyncio.to_thread(self.store.get_many, missing[start : start + batch])
                items = [(row, self.chunk(DocumentIn(**_fields(row)))) for row in rows.values()]
                vectors = iter(await self.embed([c for _, chunks in items for c in chunks]))
                done += await asyncio.to_thread(
                    self.store.attach_chunks,
                    [(row, chunks, [next(vectors) for _ in chunks]) for row, chunks in items],
                )
                self.reembedding = {"done": done, "pending": len(missing) - start - len(rows)}
            if done == before:
                break  # what is left changed under us every time; the next start retries
        await asyncio.to_thread(self.store.drop_other_models)
        self.reembedding = None
        return done

    async def revision(self) -> int:
        return self.store.revision()

    async def stats(self) -> dict[str, Any]:
        stats = await asyncio.to_thread(self.store.stats)
        answers = self.answers.stats() if self.answers else None
        return {**stats, "reembedding": self.reembedding, "answer_cache": answers}

    async def cached_answer(self, key: dict[str, Any], question: str) -> dict[str, Any] | None:
        """An earlier answer to `question` under `key` (bigevy/answers/cache.py), if any."""
        if self.answers is None:
            return None
        vector = (await self.embed_query([question]))[0]
        return self.answers.lookup(key, question, np.asarray(vector, dtype=np.float32))

    async def remember_answer(
        self,
        key: dict[str, Any],
        question: str,
        answer: dict[str, Any],
        sources: list[str],
        asked_at: float,
    ) -> bool:
        """Keep `answer`, taken from the documents `sources` for a question asked at
        `asked_at` (epoch s), unless one of them changed since: a write between the answer's
        retrieval and now would otherwise outlive the drop it made. Whether it was kept."""
        if self.answers is None or not sources:
            return False
        found = await self._now(sources)
        if found is None or any(d["updated_at"] >= asked_at - CLOCK_SKEW_S for d in found):
            return False
        vector = (await self.embed_query([question]))[0]
        self.answers.store(key, question, np.asarray(vector, dtype=np.float32), answer, sources)
        return True

    async def maintain(self) -> list[str]:
        """Fold new rows into the indexes now (also run on a schedule by the deployment)."""
        return await asyncio.to_thread(self.store.maintain)

    async def observe_question(
        self,
        question: str,
        answer: str,
        grounded: bool,
        region: str,
        language: str,
        sources: list[str],
    ) -> list[str]:
        """Count an escalated question; publish its region's most asked ones as `faq`
        documents (so they ship to the region's nodes) and retire those no longer among them.
        The ids of the region's published FAQ documents.

        `grounded` is the caller's word that `answer` is its `sources`' own sentences; it is
        checked here against what the sources say now (one may have changed since)."""
        spec = self.spec.faq
        if self.faq is None or not spec.enabled:
            return []
        grounded = grounded and await self._backed(answer, sources)
        vector = (await self.embed_query([question]))[0]
        group = await asyncio.to_thread(
            self.faq.observe,
            question,
            vector,
            answer,
            grounded,
            region,
            language,
            spec.similarity,
            sources if grounded else [],
        )
        if group.count < spec.min_count:
            return []
        return await self._publish(region)

    async def _publish(self, region: str) -> list[str]:
        """Publish the region's most asked groups as `faq` documents (so they ship to its
        nodes) and retire those no longer among them; the ids published."""
        spec = self.spec.faq
        assert self.faq is not None
        top = await asyncio.to_thread(self.faq.top, region, spec.per_region)
        # Nothing that is not backed by sources is published to nodes; with review on, nothing
        # an operator has not approved either.
        published = [
            g
            for g in top
            if g.count >= spec.min_count and g.grounded and (g.approved or not spec.review)
        ]
        docs = [
            DocumentIn(
                id=g.document_id,
                title=g.question,
                text=g.answer,
                category="faq",
                source="faq",
                region=region,
                language=g.language,
                priority="high",
            )
            for g in published
        ]
        await self.put_many(docs)  # unchanged ones cost a hash comparison
        kept = {d.id for d in docs}
        listed, _ = await asyncio.to_thread(
            self.store.list_documents,
            SearchFilters(categories=["faq"], regions=[region]),
            offset=0,
            limit=10_000,
        )
        for row in listed:
            if row["id"] not in kept:
                await asyncio.to_thread(self.store.delete, row["id"])
        return sorted(kept)

    async def faq_entries(
        self, region: str | None, limit: int, awaiting_review: bool = False
    ) -> list[dict[str, Any]]:
        """FAQ groups, most asked first, each with whether it is published to nodes now;
        only those awaiting an operator's review if asked."""
        if self.faq is None:
            return []
        groups = await asyncio.to_thread(self.faq.entries, region, None)
        if awaiting_review:
            groups = [g for g in groups if self._awaiting_review(g)]
        return [await self._faq_view(g) for g in groups[:limit]]

    async def faq_entry(self, group_id: str) -> dict[str, Any]:
        return await self._faq_view(await self._faq_group(group_id))

    async def withdraw_faq(self, group_id: str) -> dict[str, Any]:
        """An operator takes an entry back: its answer is cleared (taken again from the sources
        at its next asking) and its published document tombstoned, so nodes drop it."""
        group = None if self.faq is None else await asyncio.to_thread(self.faq.withdraw, group_id)
        if group is None:
            raise NotFound(f"no FAQ entry {group_id!r}", param="id")
        await asyncio.to_thread(self.store.delete, group.document_id)
        metrics.FAQ_WITHDRAWALS.inc(tags={"reason": "operator"})
        return await self.faq_entry(group_id)

    async def approve_faq(self, group_id: str) -> dict[str, Any]:
        """An operator approves an entry's answer as it is now (`faq.review`): it ships once
        it is among its region's most asked. A changed answer needs approving again."""
        group = await self._faq_group(group_id)
        if not (group.answer and group.grounded):
            raise Conflict(
                f"FAQ entry {group_id!r} has no answer backed by sources to approve; it is "
                "taken again from the sources at its next asking",
                code="nothing_to_approve",
            )
        assert self.faq is not None
        await asyncio.to_thread(self.faq.approve, group_id, group.answer)
        await self._publish(group.region)
        return await self.faq_entry(group_id)

    async def _faq_group(self, group_id: str) -> FaqGroup:
        group = None if self.faq is None else await asyncio.to_thread(self.faq.entry, group_id)
        if group is None:
            raise NotFound(f"no FAQ entry {group_id!r}", param="id")
        return group

    async def _faq_view(self, group: FaqGroup) -> dict[str, Any]:
        published = await asyncio.to_thread(self.store.get, group.document_id)
        return {
            **dataclasses.asdict(group),
            "published": published is not None,
            "awaiting_review": self._awaiting_review(group),
        }

    def _awaiting_review(self, group: FaqGroup) -> bool:
        review = self.spec.faq.review
        return review and group.grounded and bool(group.answer) and not group.approved

    async def _backed(self, answer: str, sources: list[str]) -> bool:
        """Whether every sentence of `answer` (an SMS: perhaps cut, perhaps without accents
        GSM-7 lacks) is in one of the `sources` as they are now."""
        found = await self._now(sources)
        if not found:
            return False
        texts = [comparable(d["text"]) for d in found]
        sentences = [comparable(s.removesuffix("...")) for s in prose_sentences(answer)]
        return bool(sentences) and all(any(s in t for t in texts) for s in sentences)

    async def _now(self, document_ids: list[str]) -> list[dict[str, Any]] | None:
        """The documents as they are now; None if one of them is gone."""
        found = [await asyncio.to_thread(self.store.get, i) for i in document_ids]
        return None if any(d is None for d in found) else found

    async def _changed(self, document_ids: list[str]) -> None:
        """What was taken from documents that changed or went goes with them, in the same
        call: cached answers, and FAQ entries, whose published document is tombstoned (the next
        delta removes it from nodes) until the next asking takes it from the new sources."""
        ids = [i for i in document_ids if not i.startswith("faq/")]
        if not ids:
            return
        if self.answers is not None:
            self.answers.drop_citing(ids)
        if self.faq is not None:
            for group in await asyncio.to_thread(self.faq.withdraw_citing, ids):
                await asyncio.to_thread(self.store.delete, group.document_id)
                metrics.FAQ_WITHDRAWALS.inc(tags={"reason": "source_changed"})

    async def search(
        self, query: str, mode: SearchMode, filters: SearchFilters, k: int
    ) -> list[Hit]:
        vector = (await self.embed_query([query]))[0] if mode != "keyword" else None
        return await asyncio.to_thread(
            self.store.search, vector=vector, text=query, mode=mode, filters=filters, k=k
        )
