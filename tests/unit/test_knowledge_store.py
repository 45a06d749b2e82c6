"""The LanceDB knowledge store with the real embedder: write, version, delete, search, survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bigevy.config import EmbedderSpec
from bigevy.knowledge.chunking import chunk_text
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.records import DocumentIn, Hit, SearchFilters, WriteResult
from bigevy.knowledge.store import KnowledgeStore
from bigevy.knowledge.taxonomy import Category, Source

DOCS = [
    DocumentIn(
        "water-1",
        "Making water safe",
        "Boil water for at least one minute to make it safe to drink. "
        "Let it cool in a covered pot.",
        Category.emergency,
        Source.government,
        region="global",
    ),
    DocumentIn(
        "malaria-1",
        "Preventing malaria",
        "Insecticide-treated mosquito nets prevent malaria. Sleep under a net every "
        "night, especially children and pregnant women.",
        Category.healthcare,
        Source.medical,
        region="east-africa",
    ),
    DocumentIn(
        "flood-1",
        "Flood safety",
        "During a flood move to higher ground. Never walk or drive through moving floodwater.",
        Category.weather_safety,
        Source.weather,
        region="east-africa",
    ),
    DocumentIn(
        "history-1",
        "The printing press",
        "Johannes Gutenberg built a movable-type printing press around 1440 in Mainz.",
        Category.history,
        Source.wikipedia,
    ),
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EmbedderSpec())


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> KnowledgeStore:
    store = KnowledgeStore(
        str(tmp_path / "lancedb"), embedding_model=embedder.model_id, dimensions=embedder.dimensions
    )
    for doc in DOCS:
        write(store, embedder, doc)
    return store


def write(store: KnowledgeStore, embedder: Embedder, doc: DocumentIn) -> WriteResult:
    chunks = [c.text for c in chunk_text(doc.text)]
    return store.upsert(doc, chunks, embedder.encode(chunks))


def search(store: KnowledgeStore, embedder: Embedder, query: str, **kwargs: Any) -> list[Hit]:
    return store.search(vector=embedder.encode([query])[0], text=query, **kwargs)


def test_ingested_documents_are_found_with_citations(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    for mode in ("hybrid", "vector", "keyword"):
        hits = search(store, embedder, "how long should I boil water", mode=mode, k=3)
        assert hits[0].document_id == "water-1", mode
        assert hits[0].title == "Making water safe" and hits[0].source == "government"
    assert store.revision() == len(DOCS)


def test_same_content_is_unchanged_and_needs_no_embedding(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    assert store.needs_write(DOCS[0]) is False
    again = write(store, embedder, DOCS[0])
    assert (again.status, again.version, again.revision) == ("unchanged", 1, 1)
    assert store.revision() == len(DOCS)


def test_update_makes_a_new_version_and_drops_old_chunks(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    changed = DocumentIn(
        **{
            **DOCS[0].__dict__,
            "text": "Use water purification tablets, "
            "one tablet per litre, and wait thirty minutes.",
        }
    )
    assert store.needs_write(changed)
    result = write(store, embedder, changed)
    assert (result.status, result.version, result.revision) == ("updated", 2, len(DOCS) + 1)
    texts = [h.text for h in search(store, embedder, "boil water one minute", k=10)]
    assert not any("Boil" in t for t in texts)
    assert any("tablet" in h.text for h in search(store, embedder, "purification tablets"))
    assert store.chunks.count_rows("document_id = 'water-1'") == 1


def test_delete_leaves_a_tombstone_and_vanishes_from_search(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    result = store.delete("malaria-1")
    assert result is not None and result.revision == len(DOCS) + 1
    assert store.get("malaria-1") is None
    tombstone = store.get("malaria-1", include_deleted=True)
    assert tombstone["deleted"] is True and tombstone["revision"] == result.revision
    assert all(h.document_id != "malaria-1" for h in search(store, embedder, "malaria nets"))
    assert store.delete("malaria-1") is None  # deleting twice changes nothing


def test_filters(store: KnowledgeStore, embedder: Embedder) -> None:
    only_weather = SearchFilters(categories=["weather_safety"])
    hits = search(store, embedder, "water", filters=only_weather)
    assert {h.document_id for h in hits} == {"flood-1"}
    regional = SearchFilters(regions=["east-africa"])
    assert {h.document_id for h in search(store, embedder, "safety", filters=regional)} <= {
        "malaria-1",
        "flood-1",
    }


def test_hybrid_finds_what_keywords_miss(store: KnowledgeStore, embedder: Embedder) -> None:
    query = "how to avoid getting bitten at bedtime"  # no word (or stem) in the malaria doc
    keyword = search(store, embedder, query, mode="keyword")
    assert all(h.document_id != "malaria-1" for h in keyword)
    hybrid = search(store, embedder, query, mode="hybrid", k=2)
    assert "malaria-1" in [h.document_id for h in hybrid]


def test_a_crash_between_tables_never_shows_half_a_write(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    # What an upsert that died after adding its chunks (before switching the document) left.
    text = "Half-written replacement text about volcanoes."
    store.chunks.add(
        [
            {
                "id": "flood-1:2:0",
                "document_id": "flood-1",
                "version": 2,
                "position": 0,
                "text": text,
                "vector": embedder.encode([text])[0],
                "embedding_model": embedder.model_id,
                "title": "Flood safety",
                "url": "",
                "category": "weather_safety",
                "source": "weather",
                "region": "east-africa",
                "language": "en",
                "priority": "normal",
                "updated_at": 0.0,
            }
        ]
    )
    hits = search(store, embedder, "volcanoes", k=10)
    assert all("volcanoes" not in h.text for h in hits)
    assert store.repair() == 1
    assert store.chunks.count_rows("document_id = 'flood-1'") == 1


def test_the_sole_writer_repairs_on_open_and_its_searches_see_one_version(
    store: KnowledgeStore, embedder: Embedder, tmp_path: Path
) -> None:
    leftover = {**store.chunks.search().where("document_id = 'flood-1'").limit(1).to_list()[0]}
    leftover.pop("_distance", None)
    store.chunks.add([{**leftover, "id": "flood-1:7:0", "version": 7, "text": "Stale volcanoes."}])

    writer = KnowledgeStore(
        str(tmp_path / "lancedb"),
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        sole_writer=True,
    )
    assert writer.chunks.count_rows("document_id = 'flood-1'") == 1  # repaired on open
    assert all("volcanoes" not in h.text for h in search(writer, embedder, "volcanoes", k=10))
    changed = DocumentIn(**{**DOCS[2].__dict__, "text": "Climb to the roof and wait."})
    write(writer, embedder, changed)
    assert [h.text for h in search(writer, embedder, "roof", k=10, mode="keyword")] == [
        "Climb to the roof and wait."
    ]
    writer.delete("flood-1")
    assert all(h.document_id != "flood-1" for h in search(writer, embedder, "flood", k=10))


def test_searches_racing_the_sole_writer_never_mix_versions(
    embedder: Embedder, tmp_path: Path
) -> None:
    """Between a write's new chunks and its cleanup both versions are in the table; a search
    that overlaps it must still show one version of the document."""
    import threading

    writer = KnowledgeStore(
        str(tmp_path / "lancedb"),
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        sole_writer=True,
    )
    vectors = embedder.encode(["Flood safety part one", "part two", "part three"])
    doc = DOCS[2]
    writer.upsert(doc, [f"v0 part {i}" for i in range(3)], vectors)
    done = threading.Event()

    def rewrite() -> None:
        for n in range(1, 25):
            text = f"{doc.text} (revised {n})"
            writer.upsert(
                DocumentIn(**{**doc.__dict__, "text": text}),
                [f"v{n} part {i}" for i in range(3)],
                vectors,
            )
        done.set()

    thread = threading.Thread(target=rewrite)
    thread.start()
    seen = 0
    while not done.is_set():
        hits = writer.search(vector=vectors[0], mode="vector", k=10)
        assert len({h.text.split()[0] for h in hits}) == 1, [h.text for h in hits]
        assert len(hits) == 3
        seen += 1
    thread.join()
    assert seen > 0
    assert {h.text.split()[0] for h in writer.search(vector=vectors[0], mode="vector")} == {"v24"}


def test_a_new_embedding_model_gets_its_own_vectors_by_a_resumable_reembed(
    store: KnowledgeStore, embedder: Embedder, tmp_path: Path
) -> None:
    import asyncio

    from bigevy.config import KnowledgeSpec
    from bigevy.knowledge.service import KnowledgeService

    changed = KnowledgeStore(
        str(tmp_path / "lancedb"), embedding_model="minilm-renamed", dimensions=384
    )
    assert changed.chunks_table == "chunks__minilm-renamed"
    assert search(changed, embedder, "boil water", mode="vector") == []  # spaces never mix
    assert changed.missing_chunks() == sorted(d.id for d in DOCS)
    assert changed.stats()["other_models"] == ["chunks__all-minilm-l6-v2"]

    calls = 0

    async def embed_then_fail(texts: list[str]) -> list[list[float]]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("embedder went away")
        return embedder.encode(texts)

    interrupted = KnowledgeService(changed, embed_then_fail, KnowledgeSpec())
    with pytest.raises(ConnectionError):
        asyncio.run(interrupted.reembed(batch=2))
    assert len(changed.missing_chunks()) == 2  # the first batch stayed done

    async def embed(texts: list[str]) -> list[list[float]]:
        return embedder.encode(texts)

    resumed = KnowledgeService(changed, embed, KnowledgeSpec())
    assert asyncio.run(resumed.reembed(batch=2)) == 2
    assert changed.missing_chunks() == [] and changed.stats()["other_models"] == []
    assert search(changed, embedder, "boil water", mode="vector")[0].document_id == "water-1"
    with pytest.raises(ValueError, match="768-d"):
        KnowledgeStore(str(tmp_path / "lancedb"), embedding_model="minilm-renamed", dimensions=768)


def test_a_new_chunk_layout_or_a_store_from_before_per_model_tables_is_reembedded(
    store: KnowledgeStore, embedder: Embedder, tmp_path: Path
) -> None:
    uri = str(tmp_path / "lancedb")
    store.db.create_table("chunks", data=store.chunks.to_arrow())  # the oldest table name
    store.db.drop_table(store.chunks_table)
    reopened = KnowledgeStore(
        uri, embedding_model=embedder.model_id, dimensions=384, chunk_layout="titled-600-120"
    )
    assert reopened.chunks_table == "chunks__all-minilm-l6-v2__titled-600-120"
    assert reopened.missing_chunks() == sorted(d.id for d in DOCS)
    assert reopened.other_models() == ["chunks"]


def test_bad_writes_are_refused_and_change_nothing(store: KnowledgeStore) -> None:
    revision = store.revision()
    with pytest.raises(ValueError, match="one vector per chunk"):
        store.upsert(DOCS[1], ["a", "b"], [[0.0] * 384])
    with pytest.raises(ValueError, match="dimensions"):
        store.upsert(DOCS[1], ["a"], [[0.0] * 3])
    assert store.revision() == revision


def test_a_batch_writes_each_document_with_its_own_revision(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    fresh = [
        DocumentIn(f"batch-{i}", f"Note {i}", f"Village notice number {i}.", "community", "local")
        for i in range(3)
    ]
    changed = DocumentIn(**{**DOCS[2].__dict__, "text": "Flooding: climb to the roof."})
    items = [
        (doc, chunks, embedder.encode(chunks))
        for doc in [DOCS[0], *fresh, changed]
        for chunks in [[c.text for c in chunk_text(doc.text)]]
    ]
    before = store.revision()
    results = store.upsert_many(items)
    assert [r.status for r in results] == ["unchanged", "added", "added", "added", "updated"]
    assert [r.revision for r in results[1:]] == list(range(before + 1, before + 5))
    assert store.get("flood-1")["version"] == 2
    assert store.chunks.count_rows("document_id = 'flood-1'") == 1  # the old version's gone
    assert search(store, embedder, "climb to the roof", mode="keyword")[0].document_id == "flood-1"

    with pytest.raises(ValueError, match="once"):
        store.upsert_many([items[1], items[1]])
    assert store.revision() == before + 4


def test_the_service_writes_an_id_sent_twice_in_order(
    store: KnowledgeStore, embedder: Embedder
) -> None:
    import asyncio

    from bigevy.config import KnowledgeSpec
    from bigevy.knowledge.service import KnowledgeService

    async def embed(texts: list[str]) -> list[list[float]]:
        return embedder.encode(texts)

    service = KnowledgeService(store, embed, KnowledgeSpec())
    first = DocumentIn("notice", "Notice", "Market day is Monday.", "community", "local")
    second = DocumentIn("notice", "Notice", "Market day moved to Tuesday.", "community", "local")
    outcomes = asyncio.run(service.put_many([DOCS[1], first, second, second]))
    assert [(r.status, r.version, n) for r, n in outcomes] == [
        ("unchanged", 1, None),
        ("added", 1, 1),
        ("updated", 2, 1),
        ("unchanged", 2, None),
    ]
    assert store.get("notice")["text"] == "Market day moved to Tuesday."


def test_upkeep_builds_the_vector_index_and_folds_new_rows_in(
    tmp_path: Path, embedder: Embedder
) -> None:
    from bigevy.config import VectorIndexSpec

    store = KnowledgeStore(
        str(tmp_path / "big"),
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        vector_index=VectorIndexSpec(min_rows=256),
    )
    towns = [f"Town {i} holds its market on day {i % 7} near the river bridge." for i in range(300)]
    vectors = embedder.encode(towns)
    store.upsert_many(
        [
            (DocumentIn(f"town-{i}", f"Town {i}", text, "community", "local"), [text], [vector])
            for i, (text, vector) in enumerate(zip(towns, vectors, strict=True))
        ]
    )
    assert [i["type"] for i in store.stats()["indexes"]] == ["FTS"]  # exact search below 256

    assert store.maintain()[0] == "built IVF_PQ vector index"
    indexes = {i["type"]: i for i in store.stats()["indexes"]}
    assert indexes["IvfPq"]["indexed_rows"] == 300 and indexes["FTS"]["unindexed_rows"] == 0

    write(store, embedder, DOCS[0])
    assert {i["type"]: i for i in store.stats()["indexes"]}["IvfPq"]["unindexed_rows"] == 1
    assert store.maintain() == ["optimized"]
    stats = store.stats()
    assert all(i["unindexed_rows"] == 0 for i in stats["indexes"])
    assert (stats["documents"], stats["chunks"], stats["revision"]) == (301, 301, 301)
    assert search(store, embedder, "boil water to drink", mode="vector")[0].document_id == "water-1"
