"""The LanceDB knowledge store with the real embedder: write, version, delete, search, survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bigevy.config import EmbedderSpec
from bigevy.knowledge.chunking import chunk_text
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.store import DocumentIn, Hit, KnowledgeStore, SearchFilters, WriteResult
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


def test_reopening_with_another_vector_size_is_refused(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="re-embed"):
        KnowledgeStore(str(tmp_path / "lancedb"), embedding_model="other", dimensions=768)


def test_bad_writes_are_refused_and_change_nothing(store: KnowledgeStore) -> None:
    revision = store.revision()
    with pytest.raises(ValueError, match="one vector per chunk"):
        store.upsert(DOCS[1], ["a", "b"], [[0.0] * 384])
    with pytest.raises(ValueError, match="dimensions"):
        store.upsert(DOCS[1], ["a"], [[0.0] * 3])
    assert store.revision() == revision
