"""The operator's console in a real browser: Debian's Chromium, driven by Playwright, against a
real Serve app, walking through what operators do: sign in by role, enrol a node (a real lilEVY
client), send an alert and watch it acknowledged, accept a contribution and find it, edit a
document, read the analytics charts. The security checks and axe-core's accessibility checks
run on the same pages; every page is saved as a screenshot (`BIGEVY_TEST_ARTIFACTS`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from lilevy.client import EdgeClient, NodeDescription
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bigevy.config import GatewaySpec, Settings
from tests.support.cluster import API, enroll, new_key
from tests.support.prometheus import Prometheus, prometheus, serve_cluster_with_dashboard
from tests.support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("BIGEVY_TEST_ARTIFACTS", "test-artifacts")) / "console"
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")


def as_node(work: Callable[[EdgeClient], Coroutine[Any, Any, T]], base_url: str, **kw: Any) -> T:
    """What a lilEVY node does, on a loop of its own (Playwright's sync API holds this one)."""

    async def run() -> T:
        async with EdgeClient(base_url, **kw) as client:
            return await work(client)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


FIXTURES = (serve_cluster_with_dashboard, prometheus)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, prometheus: Prometheus) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        gateway=GatewaySpec(prometheus_url=prometheus.url),
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "the browser tests need Debian's chromium (.ci/run installs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


def sign_in(browser: Browser, base_url: str, key: str, viewport: dict | None = None) -> Page:
    page = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}).new_page()
    page.goto(f"{base_url}/console")
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/console")
    return page


def drawn(page: Page) -> None:
    """Every chart on the page loaded and drawn (polled from here: the page's CSP forbids the
    eval that Playwright's `wait_for_function` uses)."""
    check = "[...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth)"
    wait_for(lambda: page.evaluate(check), 60, "the charts drawn")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def keys(base_url: str, settings: Settings) -> dict[str, str]:
    return {role: new_key(settings, role) for role in ("admin", "operator", "reader")}


@pytest.fixture(scope="module")
def operator(browser: Browser, base_url: str, keys: dict[str, str]) -> Page:
    return sign_in(browser, base_url, keys["operator"])


@pytest.fixture(scope="module")
def node(operator: Page, base_url: str) -> dict[str, str]:
    """A node enrolled the way an operator does it: a token made in the console, shown once,
    copied, and given to a real lilEVY client, which then reports in."""
    operator.goto(f"{base_url}/console/fleet")
    operator.get_by_role("link", name="Enrol a node").click()
    operator.get_by_label("Region").fill("valley")
    operator.get_by_role("button", name="Make a token").click()
    token = operator.get_by_label("Enrolment token").input_value()
    assert token.startswith("bevyenroll_")
    operator.get_by_role("button", name="Copy").click()
    expect(operator.get_by_text("Copied.")).to_be_visible()
    shot(operator, "enrolment-token")

    async def enrol(client: EdgeClient) -> dict[str, str]:
        done = await client.enroll(token, NodeDescription(name="lil-console", region="valley"))
        await client.heartbeat({"battery_percent": 81, "sms_in": 4})
        return {"id": done.node_id, "key": done.node_key}

    return as_node(enrol, base_url)


def test_the_overview_shows_error_replies_from_prometheus(
    browser: Browser, base_url: str, keys: dict[str, str], prometheus: Prometheus
) -> None:
    def refused() -> None:
        bad = API.get(f"{base_url}/v1/models", headers={"Authorization": "Bearer bevy_x_y"})
        assert bad.status_code == 401

    # An hour's increase needs the counter seen before the errors it counts (as in production,
    # where the counter has long existed).
    refused()
    series = 'sum(ray_bigevy_http_errors_total{status="401"})'
    wait_for(lambda: prometheus.value(series) >= 1, 120, "Prometheus to scrape the first 401")
    for _ in range(3):
        refused()
    reader = sign_in(browser, base_url, keys["reader"])

    def counted() -> bool:
        reader.reload()
        return int(reader.locator("#errors-401").inner_text()) >= 2

    wait_for(counted, 120, "the overview to count the 401s Prometheus scraped")
    expect(reader.locator("#errors-5xx")).to_have_text("0")
    shot(reader, "overview")


def test_a_reader_sees_no_alert_form_and_their_cookie_cannot_post(
    browser: Browser, base_url: str, keys: dict[str, str]
) -> None:
    reader = sign_in(browser, base_url, keys["reader"])
    reader.get_by_role("link", name="Alerts").click()
    expect(reader.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(reader.get_by_role("link", name="Compose an alert")).to_have_count(0)
    shot(reader, "alerts-as-reader")
    csrf = reader.locator("body").get_attribute("data-csrf")
    assert reader.goto(f"{base_url}/console/alerts/new").status == 403
    posted = reader.request.post(
        f"{base_url}/console/alerts/send",
        form={
            "csrf_token": csrf,
            "identifier": "x",
            "event": "Test",
            "severity": "Minor",
            "urgency": "Future",
            "regions": "valley",
            "headline": "h",
            "expires": "4e9",
        },
    )
    assert posted.status == 403 and "operator" in posted.text()
    assert API.get(f"{base_url}/v1/alerts").json()["total"] == 0


def test_a_wrong_key_is_refused_and_a_node_key_is_not_a_person(
    browser: Browser, base_url: str, node: dict[str, str]
) -> None:
    page = browser.new_page()
    for key, status in [
        ("bevy_0123456789abcdef_wrong", "invalid API key"),
        (node["key"], "node's key cannot sign in"),
    ]:
        page.goto(f"{base_url}/console/login")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text(status)
    page.context.close()


def test_an_operator_enrols_a_node_and_sees_it_come_online(
    operator: Page, base_url: str, node: dict[str, str]
) -> None:
    operator.goto(f"{base_url}/console/fleet?state=online")
    row = operator.locator("#nodes tbody tr", has_text="lil-console")
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("81 %")
    shot(operator, "fleet")
    row.get_by_role("link", name="lil-console").click()
    chart = operator.locator("img.chart")
    expect(chart).to_have_attribute("alt", re.compile("Battery"))
    drawn(operator)
    operator.get_by_label("medicine").check()
    operator.get_by_label("Languages").fill("en, sw")
    operator.get_by_role("button", name="Save subscription").click()
    expect(operator.get_by_role("status")).to_contain_text("Saved: subscription")
    shot(operator, "node")
    held = API.get(f"{base_url}/v1/nodes/{node['id']}/subscription").json()
    assert (held["categories"], held["languages"]) == (["medicine"], ["en", "sw"])


def test_an_unused_token_is_revoked_from_its_page(operator: Page, base_url: str) -> None:
    operator.goto(f"{base_url}/console/fleet/enrol")
    operator.get_by_role("button", name="Make a token").click()
    token = operator.get_by_label("Enrolment token").input_value()
    operator.get_by_role("button", name="Revoke this token").click()
    expect(operator.locator(".notice")).to_contain_text("revoked: no node can enrol with it")
    late = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": token, "name": "late"}, timeout=30
    )
    assert late.status_code == 401


def test_an_alert_goes_from_pending_to_acked_on_the_page(
    operator: Page, base_url: str, node: dict[str, str]
) -> None:
    operator.goto(f"{base_url}/console/alerts")
    operator.get_by_role("link", name="Compose an alert").click()
    operator.get_by_label("Event").fill("Flash Flood")
    operator.get_by_label("Severity").select_option("Severe")
    operator.get_by_label("Urgency").select_option("Immediate")
    operator.get_by_label("Regions").fill("valley")
    operator.get_by_label("Headline").fill("River Kafue rising fast")
    operator.get_by_label("Instruction").fill("Move to high ground now.")
    operator.get_by_role("button", name="Preview").click()
    sms = operator.locator("#sms").inner_text()
    assert sms.startswith("SEVERE FLASH FLOOD: River Kafue rising fast Move to high ground now.")
    expect(operator.locator("#segments")).to_have_text("1 SMS segment")
    expect(operator.locator("#encoding")).to_have_text("GSM-7")
    shot(operator, "alert-preview")
    operator.get_by_role("button", name="Send to 1 node").click()
    expect(operator).to_have_url(re.compile(r"/console/alerts/alert-"))
    badge = operator.locator(f'[data-node="{node["id"]}"]')
    expect(badge).to_have_text("pending")

    async def receive_and_ack(client: EdgeClient) -> dict[str, Any]:
        reply = await client.heartbeat({})
        signed = reply.alerts[0]
        await client.request(
            "POST", f"/v1/alerts/{signed['alert_id']}/ack", json={"version": signed["version"]}
        )
        return json.loads(signed["alert"])

    received = as_node(receive_and_ack, base_url, key=node["key"], node_id=node["id"])
    assert received["sms"] == sms  # the node broadcasts what the operator previewed
    expect(badge).to_have_text("acked", timeout=15_000)  # the page follows without a reload
    shot(operator, "alert-delivery")
    operator.get_by_role("button", name="Cancel this alert").click()
    expect(operator.locator("#status")).to_have_text("cancelled")


def test_an_accepted_contribution_is_found_by_search(
    operator: Page, base_url: str, node: dict[str, str]
) -> None:
    text = (
        "The Mpika borehole pump is repaired. Borehole water at Mpika is safe to drink again "
        "from Monday; the clinic tested it on Friday."
    )

    async def contribute(client: EdgeClient) -> None:
        body = {"documents": [{"title": "Mpika borehole", "text": text, "category": "community"}]}
        await client.request("POST", "/v1/sync/contributions", json=body)

    as_node(contribute, base_url, key=node["key"], node_id=node["id"])
    operator.goto(f"{base_url}/console/review")
    card = operator.locator("article.card", has_text="Mpika borehole")
    card.get_by_label("Title").fill("Mpika borehole repaired")
    shot(operator, "review")
    card.get_by_role("button", name="Accept").click()
    expect(operator.get_by_role("status")).to_contain_text("accepted")
    operator.get_by_role("link", name="Knowledge").click()
    operator.get_by_label("Search the knowledge base").fill("Is the Mpika borehole water safe?")
    operator.get_by_role("button", name="Search").click()
    first = operator.locator("ol.hits li").first
    expect(first.locator(".cite a")).to_have_text("Mpika borehole repaired")
    expect(first).to_contain_text("safe to drink again")
    shot(operator, "knowledge-search")


def test_an_operator_edits_a_document_and_markup_stays_text(operator: Page, base_url: str) -> None:
    title = "<script>window.pwned = 1</script> Boiling water"
    document = {
        "title": title,
        "text": "Boil water for one minute before drinking it.",
        "category": "medicine",
        "source": "local",
    }
    assert API.put(f"{base_url}/v1/knowledge/documents/console-edit", json=document).is_success
    operator.goto(f"{base_url}/console/knowledge/documents/console-edit")
    expect(operator.get_by_role("heading", level=1)).to_have_text(title)
    assert operator.evaluate("window.pwned") is None
    operator.get_by_label("Text").fill("Boil water for one full minute, then let it cool covered.")
    operator.get_by_role("button", name="Save").click()
    expect(operator.get_by_role("status")).to_contain_text("Saved (updated)")
    shot(operator, "document")
    stored = API.get(f"{base_url}/v1/knowledge/documents/console-edit").json()
    assert stored["text"] == "Boil water for one full minute, then let it cool covered."
    assert stored["version"] == 2


def test_uploaded_files_are_ingested_and_each_outcome_listed(
    operator: Page, base_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "cholera-signs.md"
    notes.write_text("# Cholera signs\n\nSudden watery diarrhoea needs oral rehydration at once.\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    operator.goto(f"{base_url}/console/knowledge/upload")
    operator.get_by_label("Files").set_input_files([notes, empty])
    operator.get_by_label("Category", exact=True).select_option("medicine")
    operator.get_by_role("button", name="Upload and ingest").click()
    expect(operator.get_by_role("heading", name="Ingested")).to_be_visible()
    rows = operator.locator("tbody tr")
    expect(rows.filter(has_text="cholera-signs")).to_contain_text("added")
    expect(rows.filter(has_text="empty.txt")).to_contain_text("no text")
    shot(operator, "uploaded")
    stored = API.get(f"{base_url}/v1/knowledge/documents/cholera-signs").json()
    assert (stored["title"], stored["category"]) == ("Cholera signs", "medicine")


def test_a_slow_upload_shows_its_progress(operator: Page, base_url: str, tmp_path: Path) -> None:
    big = tmp_path / "scan.bin"  # refused once read (not a text format): quick to ingest
    big.write_bytes(os.urandom(1_500_000))
    operator.goto(f"{base_url}/console/knowledge/upload")
    network = operator.context.new_cdp_session(operator)
    network.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 300_000}
    network.send("Network.emulateNetworkConditions", slow)
    try:
        operator.get_by_label("Files").set_input_files(big)
        operator.get_by_role("button", name="Upload and ingest").click()
        expect(operator.locator("#upload-state")).to_contain_text("Uploading:")
        assert 0 < operator.locator("#upload-progress").evaluate("bar => bar.value") < 100
        shot(operator, "upload-progress")
        expect(operator.get_by_role("heading", name="Ingested")).to_be_visible(timeout=30_000)
        expect(operator.locator("tbody tr", has_text="scan.bin")).to_contain_text("unsupported")
    finally:
        network.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
        network.detach()


def test_the_analytics_charts_are_drawn(
    operator: Page, base_url: str, node: dict[str, str]
) -> None:
    async def ask(client: EdgeClient) -> dict[str, Any]:
        return await client.escalate("How long should I boil drinking water?")

    assert as_node(ask, base_url, key=node["key"], node_id=node["id"])["sms"]
    operator.goto(f"{base_url}/console/analytics")
    charts = operator.locator("img.chart")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 2  # escalations per day, outcomes
    drawn(operator)
    shot(operator, "analytics")


def test_an_faq_answer_shows_its_sources_and_is_withdrawn(
    operator: Page, base_url: str, node: dict[str, str]
) -> None:
    question = "How do I give oral rehydration salts to a child?"
    document = {
        "title": "Oral rehydration salts",
        "text": "Give oral rehydration salts in small sips after every loose stool. "
        "Mix one packet in one litre of clean water.",
        "category": "medicine",
        "source": "medical",
    }
    assert API.put(f"{base_url}/v1/knowledge/documents/ors", json=document).is_success

    async def ask(client: EdgeClient) -> dict[str, Any]:
        return await client.escalate(question)

    assert as_node(ask, base_url, key=node["key"], node_id=node["id"])["citations"]
    row = operator.locator("#faq tbody tr", has_text=question)

    def listed() -> bool:
        operator.goto(f"{base_url}/console/review")
        return row.count() == 1

    wait_for(listed, 30, "the question among the FAQ entries")
    answer, sources = row.locator("td").nth(0), row.locator("td").nth(1)
    expect(answer).not_to_have_text("(withdrawn)")
    expect(sources.get_by_role("link", name="ors")).to_be_visible()
    row.get_by_role("button", name="Withdraw").click()
    expect(operator.get_by_role("status")).to_contain_text("withdrawn")
    expect(answer).to_have_text("(withdrawn)")
    entries = API.get(f"{base_url}/v1/faq").json()["data"]
    assert [e["answer"] for e in entries if e["question"] == question] == [""]

    operator.goto(f"{base_url}/console/fleet/{node['id']}")  # counts, and text only when asked
    expect(operator.get_by_text(question)).to_have_count(0)
    operator.get_by_role("link", name="Show the questions").click()
    expect(operator.get_by_role("cell", name=question)).to_be_visible()


def test_posts_without_the_token_or_from_another_site_are_refused(
    operator: Page, base_url: str
) -> None:
    operator.goto(f"{base_url}/console/fleet/enrol")
    csrf = operator.locator("body").get_attribute("data-csrf")
    url = f"{base_url}/console/fleet/enrol"
    assert operator.request.post(url, form={"region": "x"}).status == 403
    assert operator.request.post(url, form={"region": "x", "csrf_token": "0" * 32}).status == 403
    elsewhere = {"Origin": "http://evil.example"}
    refused = operator.request.post(url, form={"csrf_token": csrf}, headers=elsewhere)
    assert refused.status == 403
    made = operator.request.post(url, form={"region": "x", "csrf_token": csrf})
    assert made.status == 200 and "bevyenroll_" in made.text()


def test_an_admin_revokes_a_node_after_confirming(
    browser: Browser, base_url: str, keys: dict[str, str]
) -> None:
    doomed = enroll(base_url, name="lil-doomed")
    admin = sign_in(browser, base_url, keys["admin"])
    admin.goto(f"{base_url}/console/fleet/{doomed['node_id']}")
    admin.get_by_role("link", name="Revoke this node").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Revoke lil-doomed?")
    admin.get_by_role("button", name="Revoke lil-doomed").click()
    expect(admin.locator("h1 .badge")).to_have_text("revoked")
    beat = API.post(
        f"{base_url}/v1/nodes/{doomed['node_id']}/heartbeat",
        json={},
        headers={"Authorization": f"Bearer {doomed['node_key']}"},
    )
    assert beat.status_code == 401


def test_a_rollout_is_followed_and_paused_with_a_reason(
    operator: Page, browser: Browser, base_url: str, keys: dict[str, str], node: dict[str, str]
) -> None:
    artifact = API.post(
        f"{base_url}/v1/artifacts", params={"kind": "model", "version": "m2"}, content=b"GGUF.."
    ).json()
    made = API.post(
        f"{base_url}/v1/rollouts", json={"artifact_id": artifact["id"], "to": {"all": True}}
    ).json()
    operator.goto(f"{base_url}/console/updates")
    operator.get_by_role("link", name="model m2").click()
    expect(operator.locator("#state")).to_have_text("active")
    expect(operator.get_by_role("link", name=node["id"])).to_be_visible()
    operator.get_by_label("Reason (kept with the change)").fill("checking the canaries")
    operator.get_by_role("button", name="Pause").click()
    expect(operator.locator("#state")).to_have_text("paused")
    expect(operator.locator("#event-list")).to_contain_text("pause by key:")
    expect(operator.locator("#event-list")).to_contain_text("checking the canaries")
    assert API.get(f"{base_url}/v1/rollouts/{made['id']}").json()["state"] == "paused"
    shot(operator, "rollout")

    reader = sign_in(browser, base_url, keys["reader"])
    reader.goto(f"{base_url}/console/updates/{made['id']}")
    expect(reader.get_by_role("button", name="Resume")).to_have_count(0)
    operator.get_by_role("button", name="Abort").click()
    expect(operator.locator("#state")).to_have_text("aborted")


PAGES = [
    ("overview", "/console"),
    ("fleet-list", "/console/fleet"),
    ("alerts", "/console/alerts"),
    ("compose", "/console/alerts/new"),
    ("updates", "/console/updates"),
    ("knowledge", "/console/knowledge?q=water"),
    ("documents", "/console/knowledge/documents"),
    ("upload", "/console/knowledge/upload"),
    ("review-queue", "/console/review"),
    ("analytics-page", "/console/analytics"),
    ("models", "/console/models"),
]


def test_every_page_passes_axe_and_fits_a_phone(
    browser: Browser, base_url: str, keys: dict[str, str], node: dict[str, str]
) -> None:
    axe = Axe()
    desktop = sign_in(browser, base_url, keys["admin"])
    phone = sign_in(browser, base_url, keys["admin"], viewport=PHONE)
    for name, path in [*PAGES, ("node-page", f"/console/fleet/{node['id']}")]:
        assert desktop.goto(base_url + path).status == 200, path
        found = axe.run(desktop).response["violations"]
        serious = [v["id"] for v in found if v["impact"] in ("serious", "critical")]
        assert not serious, f"{path}: {serious}"
        shot(desktop, f"{name}-desktop")
        phone.goto(base_url + path)
        fits = phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{path} is wider than a phone's screen"
        shot(phone, f"{name}-phone")


def test_the_keyboard_reaches_the_content_and_the_forms(
    browser: Browser, base_url: str, keys: dict[str, str]
) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/console/login")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")  # past the header, to the form
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(keys["reader"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base_url}/console")
    page.context.close()


def test_signing_out_ends_the_session(
    browser: Browser, base_url: str, keys: dict[str, str]
) -> None:
    page = sign_in(browser, base_url, keys["reader"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "bigevy_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/console/login"))
    replayed = page.request.get(
        f"{base_url}/console",
        headers={"Cookie": f"bigevy_console={cookie['value']}"},
        max_redirects=0,
    )
    assert replayed.status == 303
