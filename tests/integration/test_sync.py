"""Edge sync end to end: a real Serve app, real LanceDB, the real edge client and its SQLite
store. A node enrols, takes a snapshot, then exactly the changes; cut downloads resume; bad,
replayed and foreign packages are refused and leave the node's store as it was."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lilevy.client import EdgeClient, RetryPolicy
from lilevy.errors import EdgeError
from lilevy.knowledge import EdgeKnowledge, PackageRejected
from lilevy.simulator import simulate
from lilevy.sync import SyncResult, sync_knowledge

from bigevy.config import Settings
from tests.support.cluster import API, BIGEVY, enroll, new_key

FAST = RetryPolicy(attempts=2, base_s=0.05, cap_s=1.0)


def doc(doc_id: str, text: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "title": fields.pop("title", doc_id.replace("-", " ").title()),
        "text": text,
        "category": fields.pop("category", "healthcare"),
        "source": fields.pop("source", "local"),
        **fields,
    }


def write(base_url: str, *docs: dict[str, Any]) -> None:
    reply = API.post(
        f"{base_url}/v1/knowledge/documents/batch", json={"documents": list(docs)}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    assert all(r["status"] != "error" for r in reply.json()["results"]), reply.text


def prose(seed: int, words: int) -> str:
    """Text that compresses like prose, not like a repeated line."""
    rng = random.Random(seed)
    vocab = [
        f"{rng.choice('bcdfgklmnprstvz')}{rng.choice('aeiou')}" * rng.randint(1, 4)
        for _ in range(3000)
    ]
    return " ".join(rng.choice(vocab) for _ in range(words)) + "."


class Node:
    """One enrolled lilEVY: its client and its local knowledge store."""

    def __init__(self, base_url: str, tmp: Path, name: str, region: str) -> None:
        enrolled = enroll(base_url, name, region=region)
        self.id, self.key = enrolled["node_id"], enrolled["node_key"]
        self.public_key = enrolled["signing_public_key"]
        self.base_url = base_url
        self.dir = tmp / name
        self.dir.mkdir()
        self.store = EdgeKnowledge(self.dir / "knowledge.db", self.id, self.public_key)

    def sync(self, **options: Any) -> SyncResult:
        async def run() -> SyncResult:
            async with EdgeClient(
                self.base_url, key=self.key, node_id=self.id, retry=FAST
            ) as client:
                return await sync_knowledge(client, self.store, self.dir / "downloads", **options)

        return asyncio.run(run())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return httpx.get(self.base_url + path, headers=headers, timeout=60, **kwargs)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.post(self.base_url + path, json=body, headers=headers, timeout=60)

    def fetch_package(self, full: bool = False) -> tuple[dict[str, Any], bytes]:
        """The signed manifest and payload as bigEVY serves them (no verification)."""
        signed = self.get("/v1/sync/manifest", params={"full": str(full).lower()}).json()
        payload = self.get(signed["download_url"])
        assert payload.status_code == 200, payload.text
        return signed, payload.content

    def state(self) -> dict[str, Any]:
        return self.get(f"/v1/sync/nodes/{self.id}").json()


def test_the_node_checks_the_unsigned_fields_of_a_manifest_reply() -> None:
    """`package_id` names a file and `download_url` is appended to the base URL: neither is
    signed, so a path out of the work dir or another host is refused before use."""
    from lilevy.sync import _PACKAGE_ID, _local_path

    assert _PACKAGE_ID.fullmatch("pkg-0123abcd")
    assert not any(_PACKAGE_ID.fullmatch(p) for p in ("../../etc/cron.d/x", "a/b", "", ".x"))
    assert _local_path("/v1/sync/packages/pkg-1/payload")
    for bad in ("@evil.example/x", "//evil.example/x", "http://evil.example/x", "x", None):
        assert not _local_path(bad), bad


def test_a_node_takes_a_snapshot_then_exactly_the_changes(base_url: str, tmp_path: Path) -> None:
    write(
        base_url,
        doc(
            "kisumu-water",
            "Boil drinking water for one minute during the cholera outbreak.",
            region="kisumu",
        ),
        doc("kisumu-clinic", "The Kisumu county clinic opens at 8 on weekdays.", region="kisumu"),
        doc("global-burns", "Cool a burn under running water for twenty minutes."),
        doc(
            "accra-market",
            "Makola market closes early on Sunday.",
            region="accra",
            category="community",
        ),
    )
    node = Node(base_url, tmp_path, "kisumu-1", "kisumu")

    first = node.sync()
    assert first.applied is not None and first.applied.kind == "full"
    assert {"kisumu-water", "kisumu-clinic", "global-burns"} <= node.store.ids()
    assert "accra-market" not in node.store.ids()  # another region's
    assert node.store.search("cholera water")[0]["id"] == "kisumu-water"
    assert node.store.revision == first.applied.to_revision

    write(
        base_url,
        doc(
            "kisumu-clinic", "The Kisumu county clinic now opens at 7 on weekdays.", region="kisumu"
        ),
        doc(
            "kisumu-flood",
            "Move to higher ground when the river rises.",
            region="kisumu",
            category="weather_safety",
            priority="critical",
        ),
    )
    assert API.delete(f"{base_url}/v1/knowledge/documents/global-burns").status_code == 200
    signed, _ = node.fetch_package()
    manifest = json.loads(signed["manifest"])
    assert manifest["kind"] == "delta"
    assert sorted((e["op"], e["id"]) for e in manifest["entries"]) == [
        ("delete", "global-burns"),
        ("put", "kisumu-clinic"),
        ("put", "kisumu-flood"),
    ]

    second = node.sync()
    assert second.applied is not None and second.applied.package_id == signed["package_id"]
    assert (second.applied.puts, second.applied.deletes) == (2, 1)
    assert "global-burns" not in node.store.ids()
    assert "now opens at 7" in node.store.get("kisumu-clinic")["text"]
    assert node.store.search("river higher ground")[0]["id"] == "kisumu-flood"

    assert node.sync().applied is None  # up to date: nothing to fetch
    state = node.state()
    assert state["acked_revision"] == state["current_revision"] == node.store.revision
    assert (state["lag_revisions"], state["last_error"]) == (0, None)


def test_a_cut_download_resumes_where_it_stopped(base_url: str, tmp_path: Path) -> None:
    node = Node(base_url, tmp_path, "resume-1", "resume-town")
    node.sync()
    write(base_url, doc("resume-long", prose(1, 6_000), region="resume-town"))
    signed, payload = node.fetch_package()
    size = len(payload)
    assert size > 8_000

    with pytest.raises(EdgeError, match="download cut"):
        node.sync(max_bytes=size // 2)
    assert "resume-long" not in node.store.ids()  # nothing applied from half a package

    resumed = node.sync()
    assert resumed.applied is not None and resumed.applied.package_id == signed["package_id"]
    assert resumed.downloaded_bytes == size - size // 2  # only the rest was sent again
    assert node.store.get("resume-long")["text"] == prose(1, 6_000)


def test_tampered_replayed_and_foreign_packages_change_nothing(
    base_url: str, tmp_path: Path
) -> None:
    node = Node(base_url, tmp_path, "guard-1", "guard-town")
    other = Node(base_url, tmp_path, "guard-2", "guard-town")
    write(
        base_url, doc("guard-notice", "The well on Main Road is safe again.", region="guard-town")
    )
    signed, payload = node.fetch_package()
    before = (node.store.revision, node.store.ids())

    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(PackageRejected, match="sha256"):
        node.store.apply(signed["manifest"], signed["signature"], bytes(flipped))
    with pytest.raises(PackageRejected, match="bytes"):
        node.store.apply(signed["manifest"], signed["signature"], payload[:-10])
    forged = signed["manifest"].replace(node.id, other.id)
    with pytest.raises(PackageRejected, match="signature"):
        other.store.apply(forged, signed["signature"], payload)
    with pytest.raises(PackageRejected, match="not this one"):
        other.store.apply(signed["manifest"], signed["signature"], payload)
    assert (node.store.revision, node.store.ids()) == before

    node.store.apply(signed["manifest"], signed["signature"], payload)
    assert "guard-notice" in node.store.ids()
    after = (node.store.revision, node.store.ids())
    with pytest.raises(PackageRejected, match="already applied"):
        node.store.apply(signed["manifest"], signed["signature"], payload)
    assert (node.store.revision, node.store.ids()) == after

    # bigEVY's side: another node's package, acks of what was never sent, a Range past the end.
    assert other.get(signed["download_url"]).status_code == 403
    manifest = json.loads(signed["manifest"])
    never = node.post(
        "/v1/sync/ack",
        {
            "package_id": signed["package_id"],
            "revision": manifest["to_revision"] + 5,
            "payload_sha256": manifest["payload_sha256"],
        },
    )
    assert never.status_code == 409 and never.json()["error"]["code"] == "revision_not_sent"
    unknown = node.post(
        "/v1/sync/ack",
        {"package_id": "pkg-nope", "revision": 1, "payload_sha256": "0" * 64},
    )
    assert unknown.status_code == 409 and unknown.json()["error"]["code"] == "package_not_sent"
    past = node.get(signed["download_url"], headers={"Range": f"bytes={len(payload)}-"})
    assert past.status_code == 416 and past.json()["error"]["code"] == "range_not_satisfiable"
    ok = node.post(
        "/v1/sync/ack",
        {
            "package_id": signed["package_id"],
            "revision": manifest["to_revision"],
            "payload_sha256": manifest["payload_sha256"],
        },
    )
    assert ok.status_code == 200 and ok.json()["acked_revision"] == manifest["to_revision"]


def test_a_rejected_package_is_reported_and_the_store_kept(base_url: str, tmp_path: Path) -> None:
    node = Node(base_url, tmp_path, "wrongkey-1", "wrongkey-town")
    node.sync()
    held = (node.store.revision, node.store.ids())
    # A node that pinned some other key must refuse bigEVY's packages as forged.
    impostor = Node(base_url, tmp_path, "wrongkey-2", "wrongkey-town")
    impostor.store.public_key = node.public_key[:-8] + "AAAAAAA="
    write(base_url, doc("wrongkey-doc", "Clinic closed on Friday.", region="wrongkey-town"))
    with pytest.raises(PackageRejected):
        impostor.sync()
    assert impostor.store.count() == 0
    state = impostor.state()
    assert "signature" in state["last_error"] and state["acked_revision"] == 0
    assert (node.store.revision, node.store.ids()) == held  # untouched by any of it


def test_the_budget_and_the_subscription_decide_what_a_node_holds(
    base_url: str, tmp_path: Path
) -> None:
    node = Node(base_url, tmp_path, "budget-1", "budget-town")
    write(
        base_url,
        doc(
            "budget-alert",
            "Cholera: boil all water.",
            region="budget-town",
            category="emergency",
            priority="critical",
        ),
        *[
            doc(f"budget-note-{i}", prose(10 + i, 400), region="budget-town", category="community")
            for i in range(8)
        ],
    )
    budget_mb = 0.01  # ~10 KB: the critical entry and a few notes
    reply = API.put(
        f"{base_url}/v1/nodes/{node.id}/subscription",
        json={"budget_mb": budget_mb, "regions": ["budget-town"]},
    )
    assert reply.status_code == 200 and reply.json()["custom"] is True
    node.sync()
    held = node.store.ids()
    assert "budget-alert" in held
    notes = {i for i in held if i.startswith("budget-note-")}
    assert 0 < len(notes) < 8
    manifest = json.loads(node.fetch_package(full=True)[0]["manifest"])
    assert manifest["held_bytes"] <= budget_mb * 2**20

    narrowed = API.put(
        f"{base_url}/v1/nodes/{node.id}/subscription",
        json={"budget_mb": budget_mb, "regions": ["budget-town"], "categories": ["emergency"]},
    )
    assert narrowed.status_code == 200
    delta = node.sync()
    assert delta.applied is not None and delta.applied.deletes == len(notes)
    assert {i for i in node.store.ids() if i.startswith("budget-")} == {"budget-alert"}

    bad = API.put(f"{base_url}/v1/nodes/{node.id}/subscription", json={"budget_mb": -1})
    assert bad.status_code == 422
    unknown = API.put(f"{base_url}/v1/nodes/node-nope/subscription", json={})
    assert unknown.status_code == 404


def test_contributed_knowledge_waits_for_review(base_url: str, tmp_path: Path) -> None:
    node = Node(base_url, tmp_path, "contrib-1", "contrib-town")
    offered = {
        "documents": [
            {
                "title": "Borehole",
                "text": "The zyxwell borehole near the school works again.",
                "category": "utilities",
                "metadata": {"language": "en"},
            },
            {
                "title": "Bus",
                "text": "The qwertbus to town leaves at six.",
                "category": "transportation",
            },
        ]
    }
    sent = node.post("/v1/sync/contributions", offered)
    assert sent.status_code == 202 and sent.json()["count"] == 2
    again = node.post("/v1/sync/contributions", offered)  # a retry: nothing queued twice
    assert again.json()["ids"] == sent.json()["ids"]
    legacy = node.post(
        "/sync/knowledge", {"documents": [{"title": "Market", "text": "Market day."}]}
    )
    assert legacy.status_code == 202
    borehole, bus = sent.json()["ids"]
    # A node's limits: the node routes' body size, and notes for the reviewer, not a document.
    heavy = {"documents": [{"title": f"T{i}", "text": "x" * 19_000} for i in range(5)]}
    assert node.post("/v1/sync/contributions", heavy).status_code == 413
    noted = {"title": "Notes", "text": "Short.", "metadata": {"notes": "y" * 5000}}
    refused = node.post("/v1/sync/contributions", {"documents": [noted]})
    assert refused.status_code == 422 and "metadata" in refused.json()["error"]["message"]

    search = {"query": "zyxwell borehole", "mode": "keyword"}
    assert API.post(f"{base_url}/v1/rag/search", json=search).json()["hits"] == []
    pending = API.get(f"{base_url}/v1/contributions").json()["data"]
    assert {borehole, bus} <= {c["id"] for c in pending}

    accepted = API.post(f"{base_url}/v1/contributions/{borehole}/accept", json={})
    assert accepted.status_code == 200, accepted.text
    document_id = accepted.json()["document_id"]
    stored = API.get(f"{base_url}/v1/knowledge/documents/{document_id}").json()
    assert (stored["source"], stored["region"]) == ("node_contributed", "contrib-town")
    hits = API.post(f"{base_url}/v1/rag/search", json=search).json()["hits"]
    assert hits[0]["citation"]["document_id"] == document_id
    node.sync()
    assert document_id in node.store.ids()  # and it travels to the nodes of that region

    rejected = API.post(f"{base_url}/v1/contributions/{bus}/reject", json={"reason": "unclear"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = API.post(f"{base_url}/v1/contributions/{bus}/accept", json={})
    assert late.status_code == 409
    assert node.post("/v1/sync/contributions", {"documents": []}).status_code == 422
    admin = API.post(f"{base_url}/v1/sync/contributions", json=offered)
    assert admin.status_code == 403  # only a node contributes, as itself


def test_a_frequent_question_ships_to_its_region_as_an_faq(
    base_url: str, settings: Settings, tmp_path: Path
) -> None:
    # A region with a space is valid at enrolment; an FAQ id built from it once made every
    # listing of documents answer 500.
    node = Node(base_url, tmp_path, "faq-1", "Faq Town")
    water = {
        "id": "faq-source-water",
        "title": "Safe drinking water",
        "text": "Boil drinking water for one minute to make it safe. Store it covered.",
        "category": "healthcare",
        "source": "medical",
    }
    assert API.post(f"{base_url}/v1/knowledge/documents", json=water, timeout=60).is_success
    asked = [
        "How do I make water safe to drink?",
        "how do i make water safe to drink",
        "How do I make water safe to drink??",
    ]
    unanswered = ["What is the best time to plant maize?"] * 3  # nothing vetted answers it
    sms = []
    for message in unanswered + asked:
        # The region a request names does not decide where its FAQ entry ships: the node's does.
        body = {"node_id": node.id, "message": message, "max_tokens": 40, "region": "elsewhere"}
        reply = node.post("/v1/evy/query", body)
        assert reply.status_code == 200, reply.text
        sms.append(reply.json()["sms"])

    def published(region: str = "Faq Town") -> list[dict[str, Any]]:
        params = {"category": "faq", "region": region}
        return API.get(f"{base_url}/v1/knowledge/documents", params=params).json()["data"]

    started = time.monotonic()
    while not published():  # counted after each reply, in the background
        assert time.monotonic() - started < 60, "no FAQ entry after three askings"
        time.sleep(0.5)
    (faq,) = published()  # "no verified answer" is never published, however often asked
    assert faq["title"] == asked[0] and faq["text"] in sms and faq["source"] == "faq"
    assert published("elsewhere") == []
    assert API.get(f"{base_url}/v1/knowledge/documents", params={"limit": 500}).status_code == 200
    # A search finds earlier answers only when it asks for them: they are not sources.
    query = {"query": asked[0], "top_k": 20}
    found = API.post(f"{base_url}/v1/rag/search", json=query).json()["hits"]
    assert found and all(h["category"] != "faq" for h in found)
    asked_for = API.post(f"{base_url}/v1/rag/search", json={**query, "categories": ["faq"]})
    assert [h["citation"]["document_id"] for h in asked_for.json()["hits"]] == [faq["id"]]
    # bigEVY's own answers do not cite it: an FAQ entry is an earlier answer, not a source.
    again = node.post("/v1/evy/query", {"node_id": node.id, "message": asked[0], "max_tokens": 40})
    assert again.status_code == 200, again.text
    assert not [c for c in again.json()["citations"] if c["source"] == "faq"], again.json()

    node.sync()
    local = node.store.faq_answer("How can I make water safe to drink?")
    assert local is not None and local["text"] == faq["text"]  # answered on the node next time
    assert node.store.faq_answer("What is the best time to plant maize?") is None

    # Its source changes: the entry is withdrawn in the same write, and leaves the node with
    # the next delta; it is not left saying what the source no longer says.
    changed = {**water, "text": "Boil drinking water for three minutes. Store it covered."}
    put = API.put(f"{base_url}/v1/knowledge/documents/{water['id']}", json=changed, timeout=60)
    assert put.json()["status"] == "updated"
    assert published() == []
    assert API.get(f"{base_url}/v1/knowledge/documents/{faq['id']}").status_code == 404
    node.sync()
    assert node.store.faq_answer("How can I make water safe to drink?") is None
    # The next asking takes it again from the source as it is now.
    node.post("/v1/evy/query", {"node_id": node.id, "message": asked[0]})
    started = time.monotonic()
    while not published():
        assert time.monotonic() - started < 60, "the entry was not taken again"
        time.sleep(0.5)
    assert "three minutes" in published()[0]["text"]
    # Operators see each entry with its sources, and can take one back at once.
    entries = API.get(f"{base_url}/v1/faq", params={"region": "Faq Town"}).json()["data"]
    (entry,) = [e for e in entries if e["published"]]
    assert entry["grounded"] and entry["sources"] == [water["id"]]
    (maize,) = [e for e in entries if not e["published"]]  # counted, never backed
    assert maize["count"] == 3 and not maize["grounded"] and maize["sources"] == []
    env = {**os.environ, "BIGEVY_API_KEY": API.key, "COLUMNS": "200"}

    def faq_cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [BIGEVY, "faq", *args, "--url", base_url]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    listed = faq_cli("list", "--region", "Faq Town")
    assert listed.returncode == 0 and entry["id"] in listed.stdout, listed.stdout
    withdraw = f"{base_url}/v1/faq/{entry['id']}/withdraw"
    reader = {"Authorization": f"Bearer {new_key(settings, 'reader')}"}
    assert httpx.post(withdraw, headers=reader, timeout=30).status_code == 403
    withdrawn = faq_cli("withdraw", entry["id"])
    assert withdrawn.returncode == 0, withdrawn.stdout
    assert published() == [] and not API.get(f"{base_url}/v1/faq/{entry['id']}").json()["published"]
    assert API.get(f"{base_url}/v1/faq/no-such-entry").status_code == 404
    # A withdrawn entry has no answer to approve until it is asked again.
    approve = faq_cli("approve", entry["id"])
    assert approve.returncode == 1 and "409" in approve.stdout, approve.stdout
    # Its source is deleted: the entry goes with it.
    API.delete(f"{base_url}/v1/knowledge/documents/{water['id']}")
    assert published() == []


def test_a_simulated_fleet_stays_in_sync_through_changes_cuts_and_restarts(
    base_url: str,
) -> None:
    import threading

    stop = threading.Event()

    def keep_changing() -> None:
        """Writes and deletes for the first 10 s of the 15 s run (the end check needs a
        knowledge base that holds still)."""
        i, until = 0, time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < until:
            write(base_url, doc(f"sim-{i % 5}", prose(100 + i, 300), region="sim-town"))
            if i % 4 == 3:
                API.delete(f"{base_url}/v1/knowledge/documents/sim-{(i - 2) % 5}")
            i += 1
            stop.wait(1.0)

    changer = threading.Thread(target=keep_changing)
    changer.start()
    try:
        report = simulate(
            base_url,
            API.key,
            4,
            15,
            heartbeat_interval_s=5.0,
            question_every_s=10_000.0,  # this is about sync, not answers
            region="sim-town",
            sync_every_s=2.0,
            cut_probability=0.5,
            restart_probability=0.3,
            seed=3,
        )
    finally:
        stop.set()
        changer.join()
    assert report.packages_applied >= 4 and report.restarts > 0
    assert report.kinds["sync"].failed > 0  # some downloads were cut, and resumed
    assert report.out_of_sync == []  # every node holds exactly its snapshot at the end
