"""The knowledge routes over HTTP: a real Serve app, the real embedder, LanceDB in a temp dir."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bigevy.answers.grounding import drop_unsupported_numbers
from bigevy.answers.sentences import prose_sentences
from bigevy.answers.sms import encoding_of, segment_count
from bigevy.config import DeploymentSpec, KnowledgeSpec, ModelSpec, Settings
from tests.support.cluster import API, BIGEVY, ServeCluster, load_starter_pack, wait_for

MAX_CHARS = 5000


#: The embedded default model again, configured to write its answers (the shipped default
#: composes them from the sources): what the generative path's checks act on.
GENERATIVE = "smollm2-generative"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    default = Settings().models[0]
    generative = ModelSpec(
        **{
            **default.model_dump(),
            "id": GENERATIVE,
            "answers": "generative",
            "deployment": DeploymentSpec(num_replicas=1, num_cpus=0.5),
        }
    )
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        models=[default, generative],
        knowledge=KnowledgeSpec(max_document_chars=MAX_CHARS, maintenance_interval_s=1),
    )


@pytest.fixture(scope="module")
def base_url(serve_cluster: ServeCluster, settings: Settings) -> Iterator[str]:
    url = serve_cluster.deploy(settings)
    os.environ["BIGEVY_API_KEY"] = API.key  # for the `bigevy` commands this module runs
    yield url
    del os.environ["BIGEVY_API_KEY"]


def doc(doc_id: str, text: str, **extra: str) -> dict[str, str]:
    return {
        "id": doc_id,
        "title": doc_id.replace("-", " ").title(),
        "text": text,
        "category": "emergency",
        "source": "government",
        **extra,
    }


def summary(out: str) -> dict[str, int]:
    """The counts row of `bigevy ingest`'s summary table."""
    row = next(line for line in out.splitlines() if line.startswith("│"))
    numbers = [int(cell) for cell in row.strip("│ ").split("│")]
    return dict(zip(["added", "updated", "unchanged", "failed"], numbers, strict=True))


def search(base_url: str, query: str, **extra: object) -> list[dict]:
    reply = API.post(f"{base_url}/v1/rag/search", json={"query": query, **extra}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["hits"]


def test_add_search_resend_update_delete(base_url: str) -> None:
    water = doc(
        "boil-water",
        "Boil water for one minute to make it safe to drink.",
        url="https://example.org/water",
    )
    added = API.post(f"{base_url}/v1/knowledge/documents", json=water, timeout=60)
    assert added.status_code == 201 and added.json()["status"] == "added"

    hits = search(base_url, "how do I make drinking water safe", top_k=3)
    assert hits[0]["citation"] == {
        "document_id": "boil-water",
        "title": "Boil Water",
        "source": "government",
        "url": "https://example.org/water",
        "category": "emergency",
    }

    again = API.post(f"{base_url}/v1/knowledge/documents", json=water, timeout=60)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["revision"] == added.json()["revision"]

    body = {k: v for k, v in water.items() if k != "id"}
    body["text"] = "Add one purification tablet per litre and wait thirty minutes."
    updated = API.put(f"{base_url}/v1/knowledge/documents/boil-water", json=body, timeout=60)
    assert updated.json()["status"] == "updated" and updated.json()["version"] == 2
    texts = [h["text"] for h in search(base_url, "boil one minute", mode="keyword", top_k=20)]
    assert not any("Boil water" in t for t in texts)
    assert "tablet" in search(base_url, "purification tablet", top_k=1)[0]["text"]
    assert API.get(f"{base_url}/v1/knowledge/documents/boil-water").json()["version"] == 2

    deleted = API.delete(f"{base_url}/v1/knowledge/documents/boil-water")
    assert deleted.status_code == 200 and deleted.json()["revision"] > updated.json()["revision"]
    assert API.get(f"{base_url}/v1/knowledge/documents/boil-water").status_code == 404
    assert all(
        h["citation"]["document_id"] != "boil-water"
        for h in search(base_url, "purification tablet")
    )
    assert API.delete(f"{base_url}/v1/knowledge/documents/boil-water").status_code == 404


def test_a_put_may_repeat_the_paths_id_but_not_name_another(base_url: str) -> None:
    url = f"{base_url}/v1/knowledge/documents/put-with-id"
    first = API.put(url, json=doc("put-with-id", "Wash hands with soap for twenty seconds."))
    assert first.status_code == 200 and first.json()["status"] == "added", first.text
    # What a client read back, id and all, can be sent again as it is.
    read = {k: v for k, v in API.get(url).json().items() if k in doc("x", "t")}
    read["text"] = "Wash hands with soap and clean water for twenty seconds."
    again = API.put(url, json=read)
    assert again.status_code == 200 and again.json()["status"] == "updated", again.text
    other = API.put(url, json={**read, "id": "another-doc", "text": "Overwritten."})
    assert other.status_code == 422 and other.json()["error"]["param"] == "id"
    assert "'another-doc'" in other.json()["error"]["message"]
    assert "'put-with-id'" in other.json()["error"]["message"]
    assert API.get(url).json()["text"] == read["text"]
    assert API.get(f"{base_url}/v1/knowledge/documents/another-doc").status_code == 404


def test_list_filters_and_pages(base_url: str) -> None:
    for i, category in enumerate(["weather_safety", "weather_safety", "healthcare"]):
        reply = API.post(
            f"{base_url}/v1/knowledge/documents",
            timeout=60,
            json=doc(f"list-{i}", f"Safety note number {i}.", category=category),
        )
        assert reply.status_code == 201
    page = API.get(
        f"{base_url}/v1/knowledge/documents", params={"category": "weather_safety", "limit": 1}
    ).json()
    assert page["total"] == 2 and [d["id"] for d in page["data"]] == ["list-0"]
    rest = API.get(
        f"{base_url}/v1/knowledge/documents",
        params={"category": "weather_safety", "limit": 1, "offset": 1},
    ).json()
    assert [d["id"] for d in rest["data"]] == ["list-1"]
    hits = search(base_url, "safety note", categories=["healthcare"])
    assert {h["citation"]["document_id"] for h in hits} == {"list-2"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "  "}, "query"),
        ({"query": "water", "top_k": 0}, "top_k"),
        ({"query": "water", "top_k": 101}, "top_k"),
        ({"query": "water", "categories": ["sports"]}, "categories.0"),
        ({"query": "water", "sources": ["tiktok"]}, "sources.0"),
        ({"query": "water", "mode": "magic"}, "mode"),
    ],
)
def test_bad_searches_are_422(base_url: str, body: dict, param: str) -> None:
    reply = API.post(f"{base_url}/v1/rag/search", json=body, timeout=30)
    assert reply.status_code == 422 and reply.json()["error"]["param"] == param


def test_unknown_category_lists_the_valid_ones(base_url: str) -> None:
    reply = API.post(f"{base_url}/v1/knowledge/documents", json=doc("x", "t", category="pop"))
    assert reply.status_code == 422
    assert "weather_safety" in reply.json()["error"]["message"]


def test_bad_documents_are_refused_and_store_nothing(base_url: str) -> None:
    before = API.get(f"{base_url}/v1/knowledge/documents").json()["total"]
    too_big = API.post(
        f"{base_url}/v1/knowledge/documents", timeout=60, json=doc("big", "word " * MAX_CHARS)
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["param"] == "text"
    no_title = {k: v for k, v in doc("no-title", "text").items() if k != "title"}
    assert API.post(f"{base_url}/v1/knowledge/documents", json=no_title).status_code == 422
    bad_id = API.post(f"{base_url}/v1/knowledge/documents", json=doc("../etc/passwd", "t"))
    assert bad_id.status_code == 422 and bad_id.json()["error"]["param"] == "id"
    assert API.get(f"{base_url}/v1/knowledge/documents").json()["total"] == before


def test_bigevy_ingest_reports_and_is_idempotent(base_url: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [
        json.dumps(
            {
                "_id": f"scifact-{i}",
                "title": f"Claim {i}",
                "text": f"Vitamin D study number {i} found lower fracture risk.",
            }
        )
        for i in range(70)
    ]
    lines.insert(10, "{broken")
    (corpus / "claims.jsonl").write_text("\n".join(lines) + "\n")
    (corpus / "cholera.md").write_text("# Cholera\n\nCholera spreads through dirty water.\n")
    (corpus / "bad.txt").write_text("\n")  # no text

    def ingest() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                BIGEVY,
                "ingest",
                str(corpus),
                "--url",
                base_url,
                "--source",
                "academic",
                "--category",
                "research",
                "--batch-size",
                "32",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )

    first = ingest()
    assert first.returncode == 1, first.stdout + first.stderr  # some records were skipped
    assert summary(first.stdout) == {"added": 71, "updated": 0, "unchanged": 0, "failed": 2}
    assert f"{corpus / 'claims.jsonl'}:11" in first.stdout and "invalid JSON" in first.stdout
    assert "bad.txt" in first.stdout
    hits = search(base_url, "what spreads cholera", top_k=1)
    assert hits[0]["citation"]["document_id"] == "cholera"
    assert API.get(f"{base_url}/v1/knowledge/documents/scifact-3").json()["source"] == "academic"

    revision = API.get(f"{base_url}/v1/knowledge/documents/scifact-3").json()["revision"]
    second = ingest()
    assert summary(second.stdout) == {"added": 0, "updated": 0, "unchanged": 71, "failed": 2}
    assert API.get(f"{base_url}/v1/knowledge/documents/scifact-3").json()["revision"] == revision


CHOLERA = doc(
    "cholera-signs",
    "Cholera causes sudden watery diarrhoea. Give oral "
    "rehydration salts at once and go to the nearest clinic.",
    category="healthcare",
    region="east-africa",
)


def escalate(base_url: str, message: str, **fields: object) -> dict:
    """A lilEVY node's escalation that must be answered (200)."""
    body = {"node_id": "lil-001", "message": message, **fields}
    reply = API.post(f"{base_url}/v1/evy/query", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_evy_query_answers_grounded_with_an_sms_that_fits(base_url: str) -> None:
    assert API.post(f"{base_url}/v1/knowledge/documents", json=CHOLERA, timeout=60).is_success
    for segments in (1, 2):
        body = escalate(
            base_url,
            "my child has watery diarrhoea what do i do",
            region="east-africa",
            max_sms_segments=segments,
            max_tokens=120,
        )
        assert len(body["answer"].split()) >= 3
        assert "cholera-signs" in [c["document_id"] for c in body["citations"]]
        assert 1 <= body["sms_segments"] <= segments
        assert segment_count(body["sms"]) == body["sms_segments"]
        assert body["sms_encoding"] == encoding_of(body["sms"])
        # The SMS says nothing the full answer does not: its sentences are the answer's.
        answer = prose_sentences(body["answer"])
        assert all(s in answer for s in prose_sentences(body["sms"]) if not s.endswith("..."))
        assert body["answer_mode"] == "extractive" and body["model"] == "knowledge-base"
        for sentence in body["sentences"]:  # each from a cited document, in its own words
            source = API.get(f"{base_url}/v1/knowledge/documents/{sentence['document_id']}")
            assert sentence["text"] in " ".join(source.json()["text"].split())
        assert body["timings"]["total_ms"] >= body["timings"]["retrieval_ms"] > 0


def test_a_question_in_a_language_the_knowledge_lacks_is_grounded_in_any(base_url: str) -> None:
    """Nothing here is in Swahili: the answer draws on the English document, not on nothing."""
    assert API.post(f"{base_url}/v1/knowledge/documents", json=CHOLERA, timeout=60).is_success
    body = escalate(
        base_url,
        "mtoto ana cholera na diarrhoea ya maji",
        language="sw",
        region="east-africa",
        max_tokens=60,
    )
    assert "cholera-signs" in [c["document_id"] for c in body["citations"]]


def test_evy_query_gives_no_phone_number_its_sources_do_not(base_url: str) -> None:
    """Asked for a number the knowledge base does not hold, the small model tends to make one
    up; whatever it wrote, the answer gives only numbers the cited documents give."""
    asked = "what is the phone number of the national poison control hotline"
    body = escalate(base_url, asked, max_tokens=80, model=GENERATIVE)
    sources = [
        API.get(f"{base_url}/v1/knowledge/documents/{c['document_id']}").json()["text"]
        for c in body["citations"]
    ]
    assert body["answer"].strip()  # the SMS is cut from it
    assert drop_unsupported_numbers(body["answer"], sources, asked).dropped == []


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"message": " "}, 422, "message"),
        ({"max_sms_segments": 0}, 422, "max_sms_segments"),
        ({"profile": "poetry"}, 400, "profile"),
        ({"model": "gpt-9"}, 404, "model"),
    ],
)
def test_bad_escalations(base_url: str, change: dict, status: int, param: str) -> None:
    body = {"node_id": "lil-001", "message": "flood coming what do i do", **change}
    reply = API.post(f"{base_url}/v1/evy/query", json=body, timeout=60)
    assert reply.status_code == status and reply.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("message", "language"),
    [
        ("\x00\x07 help \x1b[31m", "en"),  # control characters
        ("как очистить воду", "en"),  # another script than the language says
        ("水をきれいにする方法", "sw"),
        ("💧💧💧", "en"),
        ("\u202e\u200b?", "en"),  # direction and zero-width marks only
        ("what is the capital of mars", "xx-YY"),  # a language nobody speaks
    ],
)
def test_odd_escalations_get_no_verified_answer_not_an_error(
    base_url: str, message: str, language: str
) -> None:
    body = escalate(base_url, message, language=language)
    assert body["answer_mode"] == "none" and body["citations"] == []
    assert body["sms_segments"] == 1 and body["sms"]
    assert API.get(f"{base_url}/v1/knowledge/documents").status_code == 200


def test_an_overlong_escalation_is_refused_with_its_field(base_url: str) -> None:
    body = {"node_id": "lil-001", "message": "water " * 300}
    reply = API.post(f"{base_url}/v1/evy/query", json=body, timeout=60)
    assert reply.status_code == 422 and reply.json()["error"]["param"] == "message"


def test_legacy_search_keeps_the_prototype_shape(base_url: str) -> None:
    lightning = doc(
        "legacy-lightning",
        "During a thunderstorm stay indoors, away from windows, and do not shelter under trees.",
        category="weather_safety",
        source="weather",
    )
    assert API.post(f"{base_url}/v1/knowledge/documents", json=lightning, timeout=60).is_success
    reply = API.post(
        f"{base_url}/search",
        json={"query": "thunderstorm shelter under a tree", "top_k": 3},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"documents", "scores", "metadata"}
    assert 1 <= len(body["documents"]) == len(body["scores"]) == len(body["metadata"]) <= 3
    assert body["metadata"][0]["document_id"] == "legacy-lightning"
    assert "thunderstorm" in body["documents"][0]
    assert body["scores"] == sorted(body["scores"], reverse=True)

    only_medical = API.post(
        f"{base_url}/search",
        json={"query": "thunderstorm", "filter_metadata": {"source": "medical"}},
        timeout=60,
    ).json()
    assert "legacy-lightning" not in [m["document_id"] for m in only_medical["metadata"]]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "storm", "filter_metadata": {"colour": "red"}}, "valid keys: category"),
        ({"query": "storm", "filter_metadata": {"category": "gossip"}}, "weather_safety"),
        ({"query": " "}, "blank"),
        ({"query": "storm", "top_k": 0}, "top_k"),
    ],
)
def test_legacy_search_bad_input_is_422(base_url: str, body: dict, needle: str) -> None:
    reply = API.post(f"{base_url}/search", json=body, timeout=60)
    assert reply.status_code == 422 and needle in reply.json()["error"]["message"]


def test_legacy_generate_keeps_the_prototype_shape(base_url: str) -> None:
    reply = API.post(
        f"{base_url}/llm/generate",
        json={
            "prompt": "What should I do during a thunderstorm?",
            "context": "Stay indoors and away from windows during a thunderstorm.",
            "max_length": 40,
            "temperature": 0.2,
        },
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"response", "model_used", "tokens_used", "processing_time"}
    assert body["response"].strip() and body["model_used"] == "smollm2-135m-instruct"
    assert body["tokens_used"] > 0 and body["processing_time"] > 0

    unknown = API.post(
        f"{base_url}/llm/generate", json={"prompt": "hi", "model": "gpt-9"}, timeout=60
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    too_long = API.post(
        f"{base_url}/llm/generate", json={"prompt": "hi", "max_length": 5000}, timeout=60
    )
    assert too_long.status_code == 422 and too_long.json()["error"]["param"] == "max_length"


def test_new_rows_reach_the_indexes_on_schedule_and_on_demand(base_url: str) -> None:
    def unindexed() -> int:
        status = API.get(f"{base_url}/v1/knowledge/status", timeout=30).json()
        return sum(i["unindexed_rows"] for i in status["indexes"])

    note = doc("upkeep-note", "The well on the east side is dry until the rains return.")
    assert API.post(f"{base_url}/v1/knowledge/documents", json=note, timeout=60).is_success
    wait_for(lambda: unindexed() == 0, 60, "the scheduled upkeep to index the new chunk")

    maintained = subprocess.run(
        [BIGEVY, "knowledge", "maintain", "--url", base_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert maintained.returncode == 0, maintained.stdout + maintained.stderr
    assert "optimized" in maintained.stdout and "FTS" in maintained.stdout
    status = API.get(f"{base_url}/v1/knowledge/status", timeout=30).json()
    assert status["embedding_model"] == "all-minilm-l6-v2" and status["dimensions"] == 384
    assert status["documents"] >= 1 and status["chunks"] >= status["documents"]


def test_bulk_ingest_runs_on_ray_data_and_writes_through_the_one_writer(
    base_url: str, tmp_path: Path
) -> None:
    import ray

    records = [
        {"id": f"dump-{i}", "title": f"Article {i}", "text": f"Borehole {i} pump repair guide."}
        for i in range(300)
    ]
    records[7] = {"id": "dump-7", "title": "Article 7", "text": "Solar pumps need clean panels."}
    lines = [json.dumps(r) for r in records]
    lines.insert(50, "{not json")
    lines.append(json.dumps({"id": "dump-8", "text": "Hand pumps: grease monthly."}))  # repeat
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "COLUMNS": "200",
        "BIGEVY_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "BIGEVY_EMBEDDER__NUM_THREADS": "1",
    }
    command = [
        BIGEVY,
        "ingest",
        str(tmp_path),
        "--bulk",
        "--batch-size",
        "64",
        "--embed-cpus",
        "0.5",
    ]

    def bulk() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, env=env
        )

    first = bulk()
    assert first.returncode == 1, first.stdout + first.stderr  # one line was refused
    assert summary(first.stdout) == {"added": 300, "updated": 1, "unchanged": 0, "failed": 1}
    assert "invalid JSON" in first.stdout and "301 chunks" in first.stdout
    console = first.stdout + first.stderr  # the summary, not Ray Data's or Serve's chatter
    assert not re.search(r"\bINFO\b|deprecated", console), console
    assert search(base_url, "clean the solar panels", top_k=1)[0]["citation"]["document_id"] == (
        "dump-7"
    )
    assert API.get(f"{base_url}/v1/knowledge/documents/dump-8").json()["version"] == 2

    again = bulk()  # dump-8's first copy is written again, then its last copy
    assert summary(again.stdout) == {"added": 0, "updated": 2, "unchanged": 299, "failed": 1}
    last = API.get(f"{base_url}/v1/knowledge/documents/dump-8").json()
    assert last["text"] == "Hand pumps: grease monthly." and last["version"] == 4


def test_an_emergency_is_answered_from_the_knowledge_base_ahead_of_queued_questions(
    base_url: str,
) -> None:
    import asyncio

    load_starter_pack(base_url)

    def escalation(message: str, **extra: object) -> dict[str, object]:
        return {"node_id": "lil-007", "message": message, "region": "KE", **extra}

    async def race() -> tuple[list[str], dict]:
        finished: list[str] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=300, headers=API.headers) as client:

            async def ask(name: str, body: dict[str, object]) -> httpx.Response:
                reply = await client.post("/v1/evy/query", json=body)
                finished.append(name)
                return reply

            ordinary = [
                asyncio.create_task(
                    ask(
                        f"ordinary-{i}",
                        escalation(
                            "Tell me in detail about how to treat a burn.",
                            max_tokens=200,
                            model=GENERATIVE,
                        ),
                    )
                )
                for i in range(3)
            ]
            await asyncio.sleep(0.5)  # the ordinary questions are queued at the model first
            emergency = await ask("emergency", escalation("pls help my son is not breathing"))
            await asyncio.gather(*ordinary)
        return finished, emergency.json()

    finished, body = asyncio.run(race())
    assert finished[0] == "emergency", finished
    assert body["triage"] == {"emergency": True, "kind": "medical"}
    assert body["model"] == "knowledge-base"
    assert {"service": "ambulance", "number": "999"} in body["emergency_numbers"]
    assert body["sms"].startswith("Call 999") and body["sms_segments"] == 1
    assert segment_count(body["sms"]) == 1
    cited = [c["document_id"] for c in body["citations"]]
    assert cited[0] == "emergency-numbers-ke" and "cpr" in cited

    elsewhere = API.post(
        f"{base_url}/v1/evy/query",
        json=escalation("fire in our house help", region="atlantis"),
        timeout=60,
    ).json()
    assert elsewhere["triage"]["kind"] == "fire"
    assert elsewhere["emergency_numbers"] == [{"service": "emergency", "number": "112"}]
    assert "fire" in [c["document_id"] for c in elsewhere["citations"]]

    # A Swahili message gets its steps (CPR) in Swahili, found by what triage read in it,
    # not by whatever document happens to be nearest to Swahili words.
    swahili = API.post(
        f"{base_url}/v1/evy/query",
        json=escalation("mtoto wangu hapumui msaada", language="sw"),
        timeout=60,
    ).json()
    assert swahili["triage"] == {"emergency": True, "kind": "medical"}
    assert swahili["sms"].startswith("Piga simu 999")
    cited = [c["document_id"] for c in swahili["citations"]]
    assert cited[:2] == ["emergency-numbers-ke", "sw/cpr"]

    ordinary = API.post(
        f"{base_url}/v1/evy/query",
        json=escalation("smoke alarm beeping low battery", max_tokens=30),
        timeout=120,
    ).json()
    assert ordinary["triage"] == {"emergency": False, "kind": None}
    assert ordinary["emergency_numbers"] == []


def test_the_cli_searches_lists_shows_and_deletes_documents(base_url: str) -> None:
    load_starter_pack(base_url)
    doomed = doc("cli-doomed", "Tie boats to posts before the high water comes.")
    assert API.post(f"{base_url}/v1/knowledge/documents", json=doomed, timeout=60).is_success

    def bigevy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BIGEVY, "knowledge", *args, "--url", base_url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )

    found = bigevy("search", "what to do when a flood is coming", "--top-k", "2")
    assert found.returncode == 0, found.stdout + found.stderr
    assert "Flood safety" in found.stdout and "similarity" in found.stdout
    listed = bigevy("list", "--category", "emergency", "--limit", "500")
    assert "cli-doomed" in listed.stdout and re.search(r"1-\d+ of \d+", listed.stdout)
    assert "Tie boats to posts" in bigevy("show", "cli-doomed").stdout
    gone = bigevy("delete", "cli-doomed")
    assert gone.returncode == 0 and "cli-doomed: deleted" in gone.stdout
    missing = bigevy("show", "cli-doomed")
    assert missing.returncode == 1 and "404" in missing.stdout
    unknown = bigevy("search", "boats", "--category", "astrology")
    assert unknown.returncode == 1 and "422" in unknown.stdout and "emergency" in unknown.stdout


def test_an_answer_uses_and_cites_only_passages_about_the_question(base_url: str) -> None:
    """The search's top 3 always hold something; an answer gets only what is about it."""
    load_starter_pack(base_url)
    storm = escalate(base_url, "what should i do during a thunderstorm", max_tokens=40)
    cited = [c["document_id"] for c in storm["citations"]]
    # (this module also holds "legacy-lightning", about thunderstorms too)
    assert "lightning" in cited and set(cited) <= {"lightning", "legacy-lightning", "cyclone"}
    # Nothing vetted is about it: no answer is invented, by either mode (`unsourced: refuse`),
    # and the asker learns where to ask instead, in their language.
    for model in (None, GENERATIVE):
        off_topic = escalate(base_url, "pls help what is the capital of france", model=model)
        assert off_topic["citations"] == [] and off_topic["answer_mode"] == "none"
        assert off_topic["sms"].startswith("No verified answer") and off_topic["sentences"] == []
    french = escalate(base_url, "quelle est la capitale de la France ?", language="fr")
    assert french["answer_mode"] == "none" and french["sms"].startswith("Pas de réponse vérifiée")
    assert french["sms_segments"] == 1
    # The search itself still answers with its top k, each with the similarity judged by.
    hits = search(base_url, "pls help what is the capital of france", top_k=3)
    assert len(hits) == 3 and all(h["similarity"] < 0.3 for h in hits)


def test_the_default_model_answers_in_the_sources_own_sentences(base_url: str) -> None:
    """SmolLM2-135M is configured `extractive`: the SMS for a sick child is the vetted advice
    itself (the model once told a parent "Do not tell the child to drink more water")."""
    load_starter_pack(base_url)
    body = escalate(base_url, "My child has diarrhoea, what do I do?")
    assert body["answer_mode"] == "extractive" and body["model"] == "knowledge-base"
    assert "oral rehydration salts" in body["sms"] and body["sms_segments"] == 1
    assert [c["document_id"] for c in body["citations"]] == ["dehydration"]
    source = API.get(f"{base_url}/v1/knowledge/documents/dehydration").json()["text"]
    assert body["sentences"] and all(
        s["document_id"] == "dehydration" and s["text"] in " ".join(source.split())
        for s in body["sentences"]
    )
    assert body["timings"]["generation_ms"] == 0 and body["timings"]["compose_ms"] > 0


def test_a_question_asked_again_is_answered_from_the_cache_until_its_source_changes(
    base_url: str,
) -> None:
    goats = doc(
        "goats-in-the-cold",
        "Keep goats in a dry shed out of the wind on cold nights. Give them dry bedding.",
        category="community",
    )
    url = f"{base_url}/v1/knowledge/documents/goats-in-the-cold"
    assert API.put(url, json=goats, timeout=60).is_success
    asked = "How do I keep my goats warm on cold nights?"
    first = escalate(base_url, asked)
    assert first["timings"]["cache_hit"] == 0.0 and "dry shed" in first["sms"]
    # Kept after the reply; asked again, the same answer comes back without being made again.
    wait_for(lambda: escalate(base_url, asked)["timings"]["cache_hit"] == 1.0, 30, "a cache hit")
    again = escalate(base_url, "how do i keep my goats warm on cold nights")
    assert again["timings"]["cache_hit"] == 1.0 and again["sms"] == first["sms"]
    assert again["citations"] == first["citations"]
    other = escalate(base_url, asked, max_sms_segments=2)  # another budget: made anew
    assert other["timings"]["cache_hit"] == 0.0
    stats = API.get(f"{base_url}/v1/knowledge/status").json()["answer_cache"]
    assert stats["hits"] >= 2 and stats["entries"] >= 1
    # Its source changes: the cached answer goes in the same write.
    changed = {**goats, "text": "Bring goats into a closed shed with straw on cold nights."}
    assert API.put(url, json=changed, timeout=60).json()["status"] == "updated"
    fresh = escalate(base_url, asked)
    assert fresh["timings"]["cache_hit"] == 0.0 and "straw" in fresh["sms"]


def test_a_question_in_another_language_is_answered_from_its_translation(
    base_url: str,
) -> None:
    """The embedding model is English: a Swahili question about snakes is searched by the
    topic it names, in English, and answered in the Swahili translation's own sentences."""
    load_starter_pack(base_url)
    message = "Je, ninawezaje kujikinga na nyoka shambani?"  # how to keep safe from snakes
    answer = escalate(base_url, message, language="sw")
    assert answer["triage"]["emergency"] is False and answer["answer_mode"] == "extractive"
    assert [c["document_id"] for c in answer["citations"]][:1] == ["sw/snakebite"]
    source = API.get(f"{base_url}/v1/knowledge/documents/sw/snakebite").json()
    assert source["language"] == "sw"
    assert all(s["text"] in " ".join(source["text"].split()) for s in answer["sentences"])
    # Naming no topic the English vocabulary knows, it is not answered with a guess.
    unknown = escalate(base_url, "bei ya mbolea ni shilingi ngapi?", language="sw")
    assert unknown["answer_mode"] == "none" and unknown["sms"].startswith("Hakuna jibu")


def test_a_node_that_names_no_region_is_answered_for_the_region_it_enrolled_in(
    base_url: str,
) -> None:
    """The prototype's lilEVY client sends no region: its answers must still carry its own
    country's numbers, not another's or only the global 112."""
    load_starter_pack(base_url)
    token = API.post(f"{base_url}/v1/enrollment-tokens", json={"region": "GH"}).json()["token"]
    node = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": token, "name": "accra-1"}, timeout=30
    ).json()
    as_node = {"Authorization": f"Bearer {node['node_key']}"}

    def ask(message: str, **extra: object) -> dict:
        body = {"node_id": node["node_id"], "message": message, **extra}
        reply = httpx.post(f"{base_url}/v1/evy/query", json=body, headers=as_node, timeout=120)
        assert reply.status_code == 200, reply.text
        return reply.json()

    emergency = ask("pls help my son is not breathing")
    assert {"service": "ambulance", "number": "193"} in emergency["emergency_numbers"]
    assert emergency["sms"].startswith("Call ") and "193 (ambulance)" in emergency["sms"]
    assert emergency["citations"][0]["document_id"] == "emergency-numbers-gh"

    ordinary = ask("what are the emergency phone numbers", max_tokens=60)
    assert ordinary["triage"]["emergency"] is False
    cited = {c["document_id"] for c in ordinary["citations"]}
    assert "emergency-numbers-gh" in cited
    assert not {d for d in cited if d.startswith("emergency-numbers-")} - {
        "emergency-numbers-gh",
        "emergency-numbers",
    }, cited
    # A region the node names itself still wins.
    kenya = ask("pls help my son is not breathing", region="KE")
    assert kenya["citations"][0]["document_id"] == "emergency-numbers-ke"


def test_without_a_region_an_answer_uses_the_place_named_and_never_another_regions(
    base_url: str,
) -> None:
    """No region and no enrolled node: "ambulance in kampala" cited Ghana's numbers."""
    load_starter_pack(base_url)

    def regional(answer: dict) -> set[str]:
        cited = {c["document_id"] for c in answer["citations"]}
        return {d for d in cited if d.startswith("emergency-numbers-")}

    kampala = escalate(base_url, "whats the number for ambulance service in kampala", max_tokens=60)
    assert regional(kampala) == {"emergency-numbers-ug"}, kampala["citations"]
    anywhere = escalate(base_url, "what are the emergency phone numbers", max_tokens=60)
    assert regional(anywhere) == set(), anywhere["citations"]
    assert "emergency-numbers" in {c["document_id"] for c in anywhere["citations"]}
    # In an emergency the place named stands in for the missing region.
    nairobi = escalate(base_url, "snake bit my son in Nairobi help")
    assert nairobi["triage"] == {"emergency": True, "kind": "medical"}
    assert nairobi["citations"][0]["document_id"] == "emergency-numbers-ke"
    assert nairobi["sms"].startswith("Call 999")


def test_a_question_for_a_services_number_gets_that_line_of_its_regions_list(
    base_url: str,
) -> None:
    """The model picked the wrong line of a list: "Police: 999 or 112" for the ambulance."""
    load_starter_pack(base_url)
    accra = escalate(base_url, "what is the ambulance number in accra")
    assert accra["sms"] == "Ambulance: 193." and accra["model"] == "knowledge-base"
    assert [c["document_id"] for c in accra["citations"]] == ["emergency-numbers-gh"]
    assert accra["emergency_numbers"] == [{"service": "ambulance", "number": "193"}]
    assert accra["triage"]["emergency"] is False
    french = escalate(base_url, "numéro de la police et des pompiers au Ghana", language="fr")
    assert french["sms"] == "Police: 191. Fire: 192."
    # A node's own region, when the message names no place; the global number without either.
    assert escalate(base_url, "namba ya polisi", region="KE")["sms"] == "Police: 999 or 112."
    assert escalate(base_url, "what is the police number")["sms"] == "Emergency: 112."
    # Asking whether to call is not asking for a number: that is the model's to answer.
    advice = escalate(base_url, "should I call an ambulance for a mild fever", max_tokens=40)
    assert advice["emergency_numbers"] == []


def test_changing_the_embedding_model_reembeds_everything_in_the_background(
    base_url: str, serve_cluster: ServeCluster, settings: Settings
) -> None:
    """Last in this module: it redeploys the app with another embedding model."""
    before = API.get(f"{base_url}/v1/knowledge/status", timeout=30).json()
    assert before["documents"] > 300
    renamed = settings.model_copy(
        update={"embedder": settings.embedder.model_copy(update={"id": "minilm-v2-renamed"})}
    )
    serve_cluster.deploy(renamed)
    seen: list[dict] = []

    def reembedded() -> bool:
        reply = API.get(f"{base_url}/v1/knowledge/status", timeout=30)
        if reply.status_code == 503:  # the knowledge deployment is rolling over
            assert "Retry-After" in reply.headers
            return False
        status = reply.json()
        seen.append(status)
        return status["embedding_model"] == "minilm-v2-renamed" and not (
            status["reembedding"] or status["other_models"]
        )

    wait_for(reembedded, 300, "the re-embed to finish")
    after = seen[-1]
    assert after["documents"] == before["documents"] and after["chunks"] == before["chunks"]
    hits = search(base_url, "clean the solar panels", top_k=1, mode="vector")
    assert hits[0]["citation"]["document_id"] == "dump-7"
    embedded = API.post(f"{base_url}/v1/embeddings", json={"input": "hi"}, timeout=30).json()
    assert embedded["model"] == "minilm-v2-renamed"
