"""Connectors against a local HTTP server replaying recorded responses (never the internet).

Clock and jitter are injected: rounds run at chosen instants and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bigevy.connectors.runner import ConnectorRunner
from bigevy.connectors.spec import ConnectorsSpec, RetryPolicy, SourceSpec
from bigevy.http.alerts.protocol import AlertIn
from bigevy.knowledge.records import DocumentIn
from tests.support.replay import DATA, Replay, replay_server

NOW = datetime(2025, 3, 14, 19, 0, tzinfo=UTC).timestamp()

TORNADO = "urn:oid:2.49.0.1.840.0.7f3c1a2b9d4e5f60718293a4b5c6d7e8f9012345.001.1"
ADVISORY = "urn:oid:2.49.0.1.840.0.1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d.001.1"
FLASH_FLOOD = "urn:oid:2.49.0.1.840.0.99aa88bb77cc66dd55ee44ff33001122aabbccdd.001.1"
NWS = "w-nws.webmaster@noaa.gov"


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- a local server replaying recorded responses ----------------------------------------------


@pytest.fixture
def server() -> Iterator[Replay]:
    with replay_server() as replay:
        yield replay


# -- a sink that records what it is given ------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.docs: list[DocumentIn] = []
        self.alerts_in: list[AlertIn] = []
        self.deleted_ids: list[str] = []
        self.calls: list[str] = []
        self.fail_next: str | None = None

    def _maybe_fail(self, what: str) -> None:
        if self.fail_next == what:
            self.fail_next = None
            raise RuntimeError("knowledge base unavailable")

    async def documents(self, docs: list[DocumentIn]) -> None:
        self._maybe_fail("documents")
        self.calls.append("documents")
        self.docs += docs

    async def alerts(self, alerts: list[AlertIn], source: str) -> None:
        self._maybe_fail("alerts")
        self.calls.append("alerts")
        self.alerts_in += alerts

    async def deleted(self, ids: list[str]) -> None:
        self._maybe_fail("deleted")
        self.calls.append("deleted")
        self.deleted_ids += ids

    def doc(self, id_: str) -> DocumentIn:
        return next(d for d in self.docs if d.id == id_)

    def alert(self, identifier: str) -> AlertIn:
        return next(a for a in self.alerts_in if a.identifier == identifier)

    def clear(self) -> None:
        self.docs, self.alerts_in, self.deleted_ids, self.calls = [], [], [], []


class FixedRandom(random.Random):
    """Jitter pinned: 0.5 is no jitter, 0.0 the shortest wait, 0.999 the longest."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def scenario(
    specs: list[SourceSpec],
    body: Callable[[ConnectorRunner, RecordingSink], Any],
    *,
    sink: RecordingSink | None = None,
    **kwargs: Any,
) -> RecordingSink:
    """Run `body(runner, sink)` on one event loop with a client that ignores proxy settings."""
    sink = sink or RecordingSink()

    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            kwargs.setdefault("rng", FixedRandom())
            runner = ConnectorRunner(specs, sink, client=client, clock=lambda: NOW, **kwargs)
            await body(runner, sink)

    asyncio.run(main())
    return sink


def nws_spec(url: str, **overrides: Any) -> SourceSpec:
    fields: dict[str, Any] = {
        "name": "nws",
        "kind": "cap",
        "url": url,
        "region": "central-texas",
        "regions": {"Travis, TX": ["austin"], "TXC491": ["round-rock"], "048209": ["san-marcos"]},
        **overrides,
    }
    return SourceSpec(**fields)


def events_spec(url: str, **overrides: Any) -> SourceSpec:
    fields: dict[str, Any] = {
        "name": "events",
        "kind": "json",
        "url": url,
        "category": "community",
        "items_path": "data.items",
        "fields": {
            "id": "uid",
            "title": "name",
            "text": ["details.summary", "details.schedule"],
            "url": "links.0.href",
            "region": "area",
        },
        **overrides,
    }
    return SourceSpec(**fields)


# -- formats -----------------------------------------------------------------------------------


def test_nws_geojson_becomes_alerts_and_weather_documents(server: Replay) -> None:
    spec = nws_spec(server.file("/alerts/active", "nws_alerts_active.json"))

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        [result] = await runner.run_due(NOW)
        assert result.ok and (result.alerts, result.documents) == (3, 2)

        tornado = sink.alert(TORNADO)
        assert tornado.msg_type == "Alert" and tornado.sender == NWS
        assert (tornado.event, tornado.severity, tornado.urgency) == (
            "Tornado Warning",
            "Extreme",
            "Immediate",
        )
        assert tornado.regions == ["austin", "round-rock"]  # areaDesc, then UGC code
        assert tornado.area == "Travis, TX; Williamson, TX"
        assert tornado.sent == ts("2025-03-14T13:45:00-05:00")
        assert tornado.expires == ts("2025-03-14T14:30:00-05:00")
        assert tornado.instruction.startswith("TAKE COVER NOW!")
        assert tornado.source_url.endswith(TORNADO)

        advisory = sink.alert(ADVISORY)
        assert advisory.regions == ["san-marcos"]
        assert advisory.expires == ts("2025-03-14T13:30:00-05:00") + 6 * 3600

        cancel = sink.alert(FLASH_FLOOD)  # named by the alert it cancels, not its own id
        assert cancel.msg_type == "Cancel" and cancel.sender == NWS
        assert cancel.headline == "Flash Flood Warning cancelled"
        assert cancel.regions == ["central-texas"]  # unmapped area: the source's region
        assert not any(a.event == "Test Message" for a in sink.alerts_in)

        assert sorted(d.id for d in sink.docs) == [f"nws:{ADVISORY}", f"nws:{TORNADO}"]
        doc = sink.doc(f"nws:{TORNADO}")
        assert (doc.category, doc.source, doc.priority) == ("weather_safety", "weather", "critical")
        assert doc.region == "central-texas"  # two regions: the source's default
        assert doc.title == tornado.headline
        for part in (tornado.headline, "confirmed tornado", "TAKE COVER NOW!", "Travis, TX"):
            assert part in doc.text
        advisory_doc = sink.doc(f"nws:{ADVISORY}")
        assert (advisory_doc.priority, advisory_doc.region) == ("high", "san-marcos")

        [health] = runner.health()
        assert health.status == "healthy" and health.items_seen == 5
        assert any(f"alert {ADVISORY} has no expiry" in w for w in health.warnings)
        assert "1 Test message(s) skipped" in health.warnings

    scenario([spec], body)


def test_cancel_withdraws_the_alert_and_deletes_its_document(server: Replay) -> None:
    url = server.file("/alerts/active", "nws_original_warning.json")

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert sink.alert(FLASH_FLOOD).msg_type == "Alert"
        assert sink.doc(f"nws:{FLASH_FLOOD}").priority == "critical"

        sink.clear()
        server.file("/alerts/active", "nws_alerts_active.json")
        await runner.run_due(NOW + 300)
        assert sink.alert(FLASH_FLOOD).msg_type == "Cancel"
        assert sink.deleted_ids == [f"nws:{FLASH_FLOOD}"]
        assert f"nws:{FLASH_FLOOD}" not in [d.id for d in sink.docs]

    scenario([nws_spec(url)], body)


def test_cap_xml_alert_uses_the_sources_language(server: Replay) -> None:
    url = server.file("/cap/svr.xml", "cap_severe_thunderstorm.xml", "application/cap+xml")
    regions = {"048453": ["austin"]}
    english = nws_spec(url, name="cap-en", regions=regions)
    spanish = nws_spec(url, name="cap-es", regions=regions, language="es")
    identifier = "urn:oid:2.49.0.1.840.0.c0ffee00112233445566778899aabbccddeeff00.001.1"

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        by_event = {a.event: a for a in sink.alerts_in}  # the two sources run concurrently
        assert sorted(by_event) == ["Aviso de Tormenta Severa", "Severe Thunderstorm Warning"]
        en = by_event["Severe Thunderstorm Warning"]
        assert en.identifier == by_event["Aviso de Tormenta Severa"].identifier == identifier
        assert en.severity == "Severe"
        assert en.regions == ["austin"] and en.area == "Travis, TX"
        assert en.expires == ts("2025-03-14T14:15:00-05:00")
        assert en.source_url == "http://www.weather.gov"
        doc = sink.doc(f"cap-en:{identifier}")
        assert (doc.priority, doc.region, doc.category) == ("critical", "austin", "weather_safety")
        assert "golf ball size hail" in doc.text and "interior room" in doc.text

    scenario([english, spanish], body)


def test_cap_atom_feed_with_embedded_and_linked_alerts(server: Replay) -> None:
    server.file("/cap/severe_thunderstorm.xml", "cap_severe_thunderstorm.xml", "application/xml")
    url = server.file("/cap/feed.atom", "cap_feed.atom", "application/atom+xml")
    spec = SourceSpec(name="texas", kind="cap", url=url, regions={"Travis, TX": ["austin"]})

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        [result] = await runner.run_due(NOW)
        assert result.ok, result.reason
        heat = sink.alert("example-heat-2025-03-14-001")
        assert (heat.sender, heat.severity, heat.regions) == (
            "alerts@example.gov",
            "Moderate",
            ["austin"],
        )
        assert sink.doc("texas:example-heat-2025-03-14-001").priority == "high"
        assert any(a.event == "Severe Thunderstorm Warning" for a in sink.alerts_in)
        assert server.hits["/cap/severe_thunderstorm.xml"] == 1

    scenario([spec], body)


def test_links_and_redirects_stay_within_the_source(server: Replay) -> None:
    """A feed's links and redirects cannot reach another host (the server's own network
    included), and the source's API key never goes anywhere but its own origin."""
    elsewhere = server.base_url.replace("127.0.0.1", "localhost")  # the same server, by name
    feed = (DATA / "cap_feed.atom").read_text()
    linked = feed.replace('href="/cap/severe_thunderstorm.xml"', f'href="{elsewhere}/cap/x.xml"')
    url = server.serve("/cap/feed.atom", linked, content_type="application/atom+xml")
    server.file("/cap/x.xml", "cap_severe_thunderstorm.xml", "application/xml")
    key = {"Authorization": "Bearer source-secret"}
    texas = {"name": "texas", "kind": "cap", "regions": {"Travis, TX": ["austin"]}}
    spec = SourceSpec(**texas, url=url, headers=key)
    # Listed in follow_hosts, a loopback name is refused all the same.
    listed = SourceSpec(**{**texas, "name": "listed"}, url=url, follow_hosts=["localhost"])

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        results = await runner.run_due(NOW)
        assert [r.ok for r in results] == [False, False]
        assert "followed only within" in results[0].reason
        assert "not a public address" in results[1].reason
        assert "/cap/x.xml" not in server.hits

    scenario([spec, listed], body)

    # A redirect out of the origin is refused; one within it is followed, with the key.
    moved = server.serve("/moved", "", status=302, headers={"Location": f"{elsewhere}/news.rss"})
    server.serve("/here", "", status=302, headers={"Location": "/news.rss"})
    server.file("/news.rss", "news.rss", "application/rss+xml")
    away = SourceSpec(name="away", kind="rss", url=moved, headers=key)
    near = SourceSpec(name="near", kind="rss", url=server.base_url + "/here", headers=key)

    async def redirected(runner: ConnectorRunner, sink: RecordingSink) -> None:
        away_result, near_result = await runner.run_due(NOW)
        assert not away_result.ok and "followed only within" in away_result.reason
        assert near_result.ok and sink.docs
        assert server.received["/news.rss"]["authorization"] == "Bearer source-secret"

    scenario([away, near], redirected)
    assert server.hits["/news.rss"] == 1  # only the redirect within the origin reached it


def test_a_key_in_a_source_url_is_shown_to_no_one(server: Replay) -> None:
    """Not in the health readers see, not in the alerts and documents shipped to nodes."""
    server.file("/cap/alert.xml", "cap_severe_thunderstorm.xml", "application/xml")
    down = SourceSpec(name="down", kind="rss", url=server.base_url + "/gone?apikey=SECRET1")
    cap = SourceSpec(
        name="tx",
        kind="cap",
        url=server.base_url + "/cap/alert.xml?token=SECRET2",
        regions={"Travis, TX": ["austin"]},
    )
    server.serve("/gone", "Bad Gateway", status=502, content_type="text/plain")
    # The replay server matches paths without the query: serve both under their paths.
    server.routes["/gone?apikey=SECRET1"] = server.routes["/gone"]
    server.routes["/cap/alert.xml?token=SECRET2"] = server.routes["/cap/alert.xml"]

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        failed, read = await runner.run_due(NOW)
        assert not failed.ok and read.ok, read.reason
        shown = json.dumps([h.model_dump() for h in runner.health()])
        assert "SECRET1" not in shown and "apikey=***" in shown
        shipped = json.dumps(
            [a.model_dump() for a in sink.alerts_in] + [d.__dict__ for d in sink.docs]
        )
        assert sink.alerts_in and "SECRET2" not in shipped

    scenario([down, cap], body)


def test_rss_and_atom_entries_become_news_documents(server: Replay) -> None:
    rss = SourceSpec(
        name="tcn", kind="rss", url=server.file("/news.rss", "news.rss", "application/rss+xml")
    )
    atom = SourceSpec(
        name="city",
        kind="rss",
        url=server.file("/news.atom", "news.atom", "application/atom+xml"),
        category="government",
        source="government",
        region="austin",
    )

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)

    first = scenario([rss, atom], body)
    by_title = {d.title: d for d in first.docs}
    cooling = by_title["Cooling centers open this weekend"]
    assert cooling.text == (
        "The county opens six cooling centers from Saturday.\nLibraries stay open until 9 PM."
    )
    assert (cooling.category, cooling.source, cooling.region) == ("news", "news", "global")
    assert cooling.url == "https://news.example.org/2025/03/14/cooling-centers"
    detour = by_title["Bus route 7 detours around Congress Avenue"]
    assert "Stops at 6th and 8th Street are closed." in detour.text  # full content, not summary
    boil = by_title["Boil water notice lifted for East Austin"]
    assert boil.text.startswith("Austin Water lifted the boil water notice")
    assert (boil.category, boil.source, boil.region) == ("government", "government", "austin")
    assert (
        by_title["Free flu shots at community clinics"].url == "https://city.example.gov/news/4409"
    )
    assert {d.id.split(":")[0] for d in first.docs} == {"tcn", "city"}

    again = scenario([rss, atom], body)  # a fresh runner, no state: ids must not drift
    assert sorted(d.id for d in again.docs) == sorted(d.id for d in first.docs)


def test_json_api_items_are_mapped_onto_documents(server: Replay) -> None:
    spec = events_spec(server.file("/api/events", "community_events.json"))

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert [d.id for d in sink.docs] == ["events:101", "events:e-102"]
        food = sink.doc("events:101")
        assert food.title == "Food bank distribution"
        assert food.text == (
            "Free groceries for families, no ID required.\n\n"
            "Saturdays 9 AM to noon at 6500 Metropolis Dr."
        )
        assert (food.url, food.region) == ("https://events.example.org/e/101", "austin")
        assert (food.category, food.source, food.priority) == ("community", "local", "normal")
        assert sink.doc("events:e-102").region == "round-rock"
        [health] = runner.health()
        assert health.warnings == ["item 2 skipped: no id at 'uid'"]

    scenario([spec], body)


# -- dedupe ------------------------------------------------------------------------------------


def test_unchanged_items_are_not_delivered_again_and_changed_ones_once(server: Replay) -> None:
    events = json.loads((DATA / "community_events.json").read_text())
    server.serve("/api/events", json.dumps(events))
    specs = [
        events_spec(server.base_url + "/api/events"),
        nws_spec(server.file("/alerts/active", "nws_alerts_active.json")),
    ]

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert len(sink.docs) == 4 and len(sink.alerts_in) == 3

        sink.clear()
        results = await runner.run_due(NOW + 3600)
        assert [r.ok for r in results] == [True, True]
        assert sink.calls == []  # same content: nothing handed to the sink at all
        assert server.hits["/api/events"] == 2

        events["data"]["items"][0]["details"]["schedule"] = "Saturdays 8 AM to 11 AM."
        server.serve("/api/events", json.dumps(events))
        await runner.run_due(NOW + 7200)
        assert [d.id for d in sink.docs] == ["events:101"]
        assert sink.docs[0].text.endswith("Saturdays 8 AM to 11 AM.")
        assert sink.alerts_in == [] and sink.deleted_ids == []

        sink.clear()
        await runner.run_due(NOW + 3 * 3600)
        assert sink.calls == []

    scenario(specs, body)


# -- failures, backoff and recovery --------------------------------------------------------------

#: The fetch timeout of the garbage sources. A reply from this host's own replay server took
#: over 0.1 s once on a busy 2-core machine and read as a timeout; the slow reply in GARBAGE
#: waits well past this one.
FETCH_TIMEOUT_S = 2.0
GARBAGE = [
    pytest.param("cap", "<alert><unclosed>", 200, 0.0, "invalid XML", id="cap-invalid-xml"),
    pytest.param(
        "cap",
        "<html><body>Down for maintenance</body></html>",
        200,
        0.0,
        "is not a CAP alert or a feed of them (root <html>)",
        id="cap-html-page",
    ),
    pytest.param("cap", '{"type": "FeatureColl', 200, 0.0, "invalid JSON", id="cap-invalid-json"),
    pytest.param(
        "cap",
        '{"title": "rate limited"}',
        200,
        0.0,
        "is not a GeoJSON FeatureCollection",
        id="cap-wrong-shape",
    ),
    pytest.param("cap", "Internal Server Error", 500, 0.0, "HTTP 500 from", id="cap-http-500"),
    pytest.param(
        "cap",
        "{}",
        200,
        3 * FETCH_TIMEOUT_S,
        f"timed out after {FETCH_TIMEOUT_S:g}s",
        id="cap-timeout",
    ),
    pytest.param(
        "cap", (DATA / "cap_xxe.xml").read_text(), 200, 0.0, "DOCTYPE", id="cap-xxe-refused"
    ),
    pytest.param(
        "json",
        '{"data": {"items": {"uid": 1}}}',
        200,
        0.0,
        "expected a list of items at 'data.items', got dict",
        id="json-wrong-shape",
    ),
    pytest.param("json", "<html>oops</html>", 200, 0.0, "invalid JSON", id="json-invalid"),
    pytest.param("json", "Bad Gateway", 502, 0.0, "HTTP 502 from", id="json-http-502"),
    pytest.param(
        "rss", "this is not a feed", 200, 0.0, "is not an RSS or Atom feed", id="rss-garbage"
    ),
    # 13 KB that feedparser's lenient parser expanded to 10 MB (its strict parser is not
    # reached: the entity is used where XML does not allow it).
    pytest.param(
        "rss",
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "' + "x" * 1000 + '">]>'
        "<rss version='2.0'><channel><title>t</title><item><title>a</title><description>"
        + "&big;" * 2000
        + "</description></item></channel><junk>&unknown;</rss>",
        200,
        0.0,
        "DOCTYPE",
        id="rss-entity-expansion-refused",
    ),
]
GOOD = {
    "cap": ("nws_original_warning.json", "application/geo+json"),
    "json": ("community_events.json", "application/json"),
    "rss": ("news.rss", "application/rss+xml"),
}


@pytest.mark.parametrize(("kind", "garbage", "status", "delay", "reason"), GARBAGE)
def test_garbage_marks_the_source_unhealthy_and_delivers_nothing(
    server: Replay, kind: str, garbage: str, status: int, delay: float, reason: str
) -> None:
    good, content_type = GOOD[kind]
    url = server.file("/feed", good, content_type)
    spec = {
        "cap": nws_spec(url, timeout_s=FETCH_TIMEOUT_S),
        "json": events_spec(url, timeout_s=FETCH_TIMEOUT_S, mirror=True),
        "rss": SourceSpec(name="news", kind="rss", url=url, timeout_s=FETCH_TIMEOUT_S, mirror=True),
    }[kind]

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        [first] = await runner.run_due(NOW)
        assert first.ok and sink.docs
        delivered = len(sink.docs) + len(sink.alerts_in)
        sink.clear()

        failed_at = NOW + spec.interval_s  # type: ignore[operator]
        server.serve("/feed", garbage, status=status, content_type="text/plain", delay=delay)
        [result] = await runner.run_due(failed_at)
        assert not result.ok and reason in result.reason
        [health] = runner.health()
        assert (health.status, health.consecutive_failures) == ("unhealthy", 1)
        assert reason in health.reason
        assert health.last_success == NOW
        assert sink.calls == []  # nothing delivered, nothing deleted: knowledge untouched
        assert health.next_due == failed_at + 30  # first backoff step, jitter pinned to none

        hits = server.hits["/feed"]
        assert await runner.run_due(failed_at + 29) == []  # not retried before the backoff
        assert server.hits["/feed"] == hits

        server.file("/feed", good, content_type)
        [recovered] = await runner.run_due(failed_at + 30)
        assert recovered.ok
        [health] = runner.health()
        assert (health.status, health.reason, health.consecutive_failures) == ("healthy", "", 0)
        assert health.items_seen == delivered
        assert sink.calls == []  # the same content as before the failure: nothing to resend

    scenario([spec], body)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_s=10, factor=2, max_s=100, jitter=0.2)
    assert [policy.delay(n, FixedRandom(0.5)) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert policy.delay(1, FixedRandom(0.0)) == pytest.approx(8.0)  # 20% shorter
    assert policy.delay(1, FixedRandom(0.999999)) == pytest.approx(12.0)  # 20% longer
    assert policy.delay(6, FixedRandom(0.999999)) == 100  # never above the cap
    waits = [policy.delay(3, random.Random(seed)) for seed in range(20)]
    assert all(32 <= w <= 48 for w in waits) and len(set(waits)) > 1


def test_runner_backs_off_exponentially_while_a_source_keeps_failing(server: Replay) -> None:
    url = server.serve("/alerts/active", "Service Unavailable", status=503)

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        now, waits = NOW, []
        for _ in range(7):
            [result] = await runner.run_due(now)
            assert not result.ok and "HTTP 503" in result.reason
            [health] = runner.health()
            waits.append(health.next_due - now)
            now = health.next_due
        assert waits == [30, 60, 120, 240, 480, 900, 900]
        assert runner.health()[0].consecutive_failures == 7
        assert sink.calls == []

    scenario([nws_spec(url)], body)


def test_a_sink_failure_is_retried_and_the_items_delivered_later(server: Replay) -> None:
    spec = events_spec(server.file("/api/events", "community_events.json"))
    sink = RecordingSink()
    sink.fail_next = "documents"

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        [result] = await runner.run_due(NOW)
        assert not result.ok
        assert (
            result.reason == "delivering documents failed: RuntimeError: knowledge base unavailable"
        )
        assert sink.docs == []
        [retry] = await runner.run_due(runner.next_due())
        assert retry.ok and [d.id for d in sink.docs] == ["events:101", "events:e-102"]

    scenario([spec], body, sink=sink)


# -- a watched directory -------------------------------------------------------------------------


def test_directory_files_become_documents_updates_and_deletions(tmp_path: Path) -> None:
    folder = tmp_path / "local"
    (folder / "clinics").mkdir(parents=True)
    (folder / "shelters.md").write_text(
        "# Emergency shelters\n\nThe Palmer Center opens at 6 PM.\n"
    )
    (folder / "library_hours.txt").write_text("Central Library: 10 AM to 9 PM daily.\n")
    (folder / "clinics" / "clinics.jsonl").write_text(
        json.dumps({"id": "clinic-east", "title": "East clinic", "text": "Open 8-5.",
                    "category": "healthcare"})
        + "\n"
        + json.dumps({"id": "clinic-north", "title": "North clinic", "text": "Open 9-6."})
        + "\n"
    )  # fmt: skip
    (folder / ".draft.md").write_text("# Not ready\n")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    spec = SourceSpec(
        name="local", kind="directory", path=folder, category="community", region="austin"
    )
    hour = 3600

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert sorted(d.id for d in sink.docs) == [
            "local:clinic-east",
            "local:clinic-north",
            "local:library_hours.txt",
            "local:shelters.md",
        ]
        shelters = sink.doc("local:shelters.md")
        assert shelters.title == "Emergency shelters"
        assert (shelters.category, shelters.source, shelters.region) == (
            "community",
            "local",
            "austin",
        )
        assert sink.doc("local:library_hours.txt").title == "library hours"
        assert sink.doc("local:clinic-east").category == "healthcare"
        assert sink.doc("local:clinic-north").category == "community"

        sink.clear()
        (folder / "shelters.md").write_text("# Emergency shelters\n\nThe Palmer Center is full.\n")
        await runner.run_due(NOW + hour)
        assert [d.id for d in sink.docs] == ["local:shelters.md"]
        assert "is full" in sink.docs[0].text and sink.deleted_ids == []

        sink.clear()
        (folder / "library_hours.txt").unlink()
        lines = (folder / "clinics" / "clinics.jsonl").read_text().splitlines()
        (folder / "clinics" / "clinics.jsonl").write_text(lines[0] + "\n")
        await runner.run_due(NOW + 2 * hour)
        assert sorted(sink.deleted_ids) == ["local:clinic-north", "local:library_hours.txt"]
        assert sink.docs == []

        sink.clear()
        with (folder / "clinics" / "clinics.jsonl").open("a") as f:
            f.write("{not json\n")
        [result] = await runner.run_due(NOW + 3 * hour)
        assert not result.ok and "clinics.jsonl:2: invalid JSON" in result.reason
        assert sink.calls == []  # a broken file deletes nothing

        (folder / "clinics" / "clinics.jsonl").write_text(lines[0] + "\n")
        [result] = await runner.run_due(runner.next_due())
        assert result.ok and sink.calls == []

    scenario([spec], body)


def test_the_directory_follows_no_link_and_its_lines_overwrite_nothing(tmp_path: Path) -> None:
    folder, secrets = tmp_path / "docs", tmp_path / "data"
    (folder / "notes").mkdir(parents=True)
    secrets.mkdir()
    (secrets / "signing_key.md").write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n")
    (folder / "key.md").symlink_to(secrets / "signing_key.md")
    (folder / "linked").symlink_to(secrets, target_is_directory=True)
    (folder / "notes" / "water.md").write_text("# Water\n\nBoil it.\n")
    line = {"id": "cpr", "title": "CPR", "text": "Something else entirely."}
    (folder / "notes" / "overwrite.jsonl").write_text(json.dumps(line) + "\n")
    spec = SourceSpec(name="docs", kind="directory", path=folder, category="community")

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        [result] = await runner.run_due(NOW)
        assert result.ok, result.reason
        assert sorted(d.id for d in sink.docs) == ["docs:cpr", "docs:notes/water.md"]
        assert not any("PRIVATE KEY" in d.text for d in sink.docs)

    scenario([spec], body)


def test_a_missing_directory_is_unhealthy_not_an_empty_source(tmp_path: Path) -> None:
    folder = tmp_path / "mounted"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nText.\n")
    spec = SourceSpec(name="mnt", kind="directory", path=folder, category="community")

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        (folder / "a.md").unlink()
        folder.rmdir()
        sink.clear()
        [result] = await runner.run_due(runner.next_due())
        assert not result.ok and "does not exist" in result.reason
        assert sink.deleted_ids == []

    scenario([spec], body)


# -- persistence -----------------------------------------------------------------------------------


def test_a_new_runner_remembers_what_was_delivered_and_each_sources_health(
    server: Replay, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "connectors.json"
    events = events_spec(server.file("/api/events", "community_events.json"))
    nws = nws_spec(server.file("/alerts/active", "nws_alerts_active.json"))
    broken = SourceSpec(name="broken", kind="rss", url=server.base_url + "/missing")
    specs = [events, nws, broken]

    async def first(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert len(sink.docs) == 4 and len(sink.alerts_in) == 3

    async def second(runner: ConnectorRunner, sink: RecordingSink) -> None:
        health = {h.name: h for h in runner.health()}
        assert health["events"].status == "healthy" and health["events"].last_success == NOW
        assert health["broken"].status == "unhealthy"
        assert "HTTP 404" in health["broken"].reason
        assert health["broken"].consecutive_failures == 1
        assert await runner.run_due(NOW + 10) == []  # schedules survived too

        await runner.run_due(NOW + 3600)
        assert sink.calls == []  # everything was delivered before the restart

    scenario(specs, first, state_file=state)
    assert [p.name for p in state.parent.iterdir()] == ["connectors.json"]  # no temp files left
    scenario(specs, second, state_file=state)


def test_a_corrupt_state_file_is_set_aside_and_sources_start_afresh(
    server: Replay, tmp_path: Path
) -> None:
    state = tmp_path / "connectors.json"
    state.write_text('{"version": 1, "sources": {"events": {"health": ')
    spec = events_spec(server.file("/api/events", "community_events.json"))

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await runner.run_due(NOW)
        assert len(sink.docs) == 2

    scenario([spec], body, state_file=state)
    assert (tmp_path / "connectors.json.corrupt").exists()
    assert json.loads(state.read_text())["sources"]["events"]["health"]["status"] == "healthy"


def test_run_forever_fetches_due_sources_until_stopped(server: Replay) -> None:
    spec = events_spec(server.file("/api/events", "community_events.json"))
    stop = asyncio.Event()

    class StoppingSink(RecordingSink):
        async def documents(self, docs: list[DocumentIn]) -> None:
            await super().documents(docs)
            stop.set()

    async def body(runner: ConnectorRunner, sink: RecordingSink) -> None:
        await asyncio.wait_for(runner.run_forever(stop), timeout=30)
        assert len(sink.docs) == 2

    scenario([spec], body, sink=StoppingSink())


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "interval_s"),
    [
        ("weather_safety", 300),
        ("transportation", 1800),
        ("healthcare", 3600),
        ("utilities", 3600),
        ("community", 3600),
        ("government", 4 * 3600),
        ("local_business", 24 * 3600),
        ("news", 3600),
    ],
)
def test_default_intervals_follow_the_category(category: str, interval_s: float) -> None:
    spec = SourceSpec(name="s", kind="rss", url="https://example.org/feed", category=category)
    assert spec.interval_s == interval_s


def test_source_defaults_by_kind() -> None:
    cap = SourceSpec(name="nws", kind="cap", url="https://api.weather.gov/alerts/active")
    assert (cap.category, cap.source, cap.interval_s, cap.mirror) == (
        "weather_safety",
        "weather",
        300,
        True,
    )
    rss = SourceSpec(name="news", kind="rss", url="https://example.org/feed")
    assert (rss.category, rss.source, rss.mirror) == ("news", "news", False)
    assert SourceSpec(name="s", kind="rss", url="https://x.org", interval_s=60).interval_s == 60


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "cap"}, "kind 'cap' needs an http(s) url"),
        ({"kind": "rss", "url": "file:///etc/passwd"}, "needs an http(s) url"),
        ({"kind": "directory", "category": "community"}, "kind 'directory' needs a path"),
        ({"kind": "directory", "path": "/srv/docs"}, "kind 'directory' needs a category"),
        (
            {
                "kind": "json",
                "url": "https://x.org",
                "category": "community",
                "fields": {"id": "a"},
            },
            "fields must map ['text']",
        ),
        (
            {
                "kind": "json",
                "url": "https://x.org",
                "category": "community",
                "fields": {"id": "a", "text": "b", "body": "c"},
            },
            "unknown fields ['body']",
        ),
        ({"kind": "rss", "url": "https://x.org", "intervl_s": 5}, "intervl_s"),
        ({"kind": "ftp", "url": "https://x.org"}, "kind"),
    ],
)
def test_invalid_source_specs_are_refused_with_the_reason(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SourceSpec(name="bad", **fields)


def test_source_names_must_be_unique() -> None:
    source = {"name": "nws", "kind": "cap", "url": "https://api.weather.gov/alerts/active"}
    with pytest.raises(ValidationError, match=r"duplicate source names: \['nws'\]"):
        ConnectorsSpec(sources=[source, source])
