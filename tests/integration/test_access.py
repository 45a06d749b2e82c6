"""Who may call what, over HTTP on a real Serve app: every route refuses callers it should,
enrolment and heartbeats end to end, rate and size limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from bigevy.config import FleetSpec, RateLimit, Settings
from bigevy.fleet.roles import Role
from bigevy.fleet.service import FleetService
from tests.support.cluster import API, enroll
from tests.support.waiting import wait_for

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}
#: Authenticated by the enrolment token in its body, not by a key.
TOKEN_AUTH = {("POST", "/v1/nodes/enroll")}
NODE_LIMIT = RateLimit(per_second=2.0, burst=4)
FAILED_AUTH_LIMIT = RateLimit(per_second=0.5, burst=3)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    limits = {**FleetSpec().rate_limits, "node": NODE_LIMIT, "failed_auth": FAILED_AUTH_LIMIT}
    return Settings(data_dir=tmp_path_factory.mktemp("data"), fleet=FleetSpec(rate_limits=limits))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_refuses_who_it_should(base_url: str, fleet: FleetService) -> None:
    schema = API.get(f"{base_url}/openapi.json").json()
    node = enroll(base_url, "matrix-node")
    operations = [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
    ]
    protected = [o for o in operations if (o[0], o[1]) not in PUBLIC | TOKEN_AUTH]
    assert len(protected) >= 28
    checked = 0
    for method, path, op in operations:
        if (method, path) in PUBLIC | TOKEN_AUTH:
            assert "x-bigevy-roles" not in op, path
            continue
        roles = set(op["x-bigevy-roles"])
        anonymous = httpx.request(method, base_url + _fill(path, "x", "x"), timeout=60)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error"]["code"] == "missing_api_key"
        for role in Role:
            if role == Role.node:
                created = fleet.create_key(role, "matrix", node_id=node["node_id"])
                url = base_url + _fill(path, node["node_id"], created.id)
            else:
                created = fleet.create_key(role, "matrix")
                url = base_url + _fill(path, "node-unknown", created.id)
            # A stream (server-sent events) never ends: its status is all we read of it.
            with httpx.stream(method, url, headers=bearer(created.key), timeout=120) as reply:
                if role in roles:
                    assert reply.status_code not in (401, 403), (method, path, role)
                else:
                    reply.read()
                    assert reply.status_code == 403, (method, path, role, reply.text)
                    assert reply.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked == len(Role) * len(protected)


def _fill(path: str, node_id: str, key_id: str) -> str:
    return (
        path.replace("{node_id}", node_id)
        .replace("{key_id}", key_id)
        .replace("{model_id}", "no-such-model")
        .replace("{document_id}", "no-such-document")
        .replace("{package_id}", "no-such-package")
        .replace("{alert_id}", "no-such-alert")
    )


def test_a_node_acts_only_as_itself(base_url: str) -> None:
    alice, bob = enroll(base_url, "alice"), enroll(base_url, "bob")
    as_alice = bearer(alice["node_key"])
    for method, path, body in [
        ("POST", f"/v1/nodes/{bob['node_id']}/heartbeat", {}),
        ("GET", f"/v1/nodes/{bob['node_id']}", None),
        ("POST", "/v1/evy/query", {"node_id": bob["node_id"], "message": "help fire"}),
    ]:
        reply = httpx.request(method, base_url + path, json=body, headers=as_alice, timeout=60)
        assert reply.status_code == 403, (path, reply.text)
        assert bob["node_id"] in reply.json()["error"]["message"]
    assert API.get(f"{base_url}/v1/nodes/{bob['node_id']}").json()["heartbeats"] == []


def test_enrolment_heartbeats_and_their_directives(base_url: str) -> None:
    token = API.post(
        f"{base_url}/v1/enrollment-tokens", json={"region": "KE", "note": "clinic"}
    ).json()
    description = {
        "name": "kisumu-clinic",
        "hardware": "Raspberry Pi 4",
        "phone_number": "+254 700 000000",
        "model": "smollm2-135m",
        "storage_mb": 4096,
    }
    enrolled = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": token["token"], **description}, timeout=30
    )
    assert enrolled.status_code == 201, enrolled.text
    node = enrolled.json()
    assert node["node_key"].startswith("bevy_") and len(node["signing_public_key"]) == 44
    replayed = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": token["token"], "name": "again"}, timeout=30
    )
    assert replayed.status_code == 409
    assert replayed.json()["error"]["code"] == "enrollment_token_used"
    forged = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": "bevyenroll_x_y", "name": "x"}, timeout=30
    )
    assert forged.status_code == 401

    url = f"{base_url}/v1/nodes/{node['node_id']}/heartbeat"
    as_node = bearer(node["node_key"])
    impossible = httpx.post(url, json={"battery_percent": 140}, headers=as_node, timeout=30)
    assert impossible.status_code == 422
    assert impossible.json()["error"]["param"] == "battery_percent"
    negative = httpx.post(url, json={"sms_in": -1}, headers=as_node, timeout=30)
    assert negative.status_code == 422
    shown = API.get(f"{base_url}/v1/nodes/{node['node_id']}").json()
    assert shown["state"] == "never_seen" and shown["heartbeats"] == []  # nothing written

    beat = {
        "battery_percent": 64,
        "power_source": "solar",
        "sms_in": 12,
        "sms_out": 11,
        "knowledge_revision": 0,
        "connectivity": ["sms", "internet"],
    }
    API.post(
        f"{base_url}/v1/knowledge/documents",
        json={
            "id": "clinic-hours",
            "title": "Clinic hours",
            "text": "The clinic opens at 8.",
            "category": "healthcare",
            "source": "local",
        },
        timeout=60,
    )
    # The revision told to nodes is cached for a few seconds: another node's heartbeats show
    # when the new one is told.
    other = enroll(base_url, "revision-watcher")
    watch = f"{base_url}/v1/nodes/{other['node_id']}/heartbeat"
    wait_for(
        lambda: bool(
            httpx.post(watch, json=beat, headers=bearer(other["node_key"]), timeout=30).json()[
                "directives"
            ]
        ),
        30,
        "heartbeats to be told of the new revision",
    )
    reply = httpx.post(url, json=beat, headers={**as_node, "Idempotency-Key": "b1"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "online"
    assert reply.json()["directives"][0]["type"] == "knowledge_update"
    again = httpx.post(url, json=beat, headers={**as_node, "Idempotency-Key": "b1"}, timeout=30)
    assert again.status_code == 200
    shown = API.get(f"{base_url}/v1/nodes/{node['node_id']}").json()
    assert [h["sms_in"] for h in shown["heartbeats"]] == [12]  # the retry stored nothing more
    assert shown["region"] == "KE" and shown["state"] == "online"
    listed = API.get(f"{base_url}/v1/nodes", params={"state": "online", "region": "KE"}).json()
    assert node["node_id"] in [n["id"] for n in listed["data"]]


def test_a_flood_gets_429_then_recovers(base_url: str) -> None:
    node = enroll(base_url, "flooder")
    url = f"{base_url}/v1/nodes/{node['node_id']}"
    headers = bearer(node["node_key"])
    codes = [httpx.get(url, headers=headers, timeout=30) for _ in range(NODE_LIMIT.burst + 4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    wait = int(limited[0].headers["Retry-After"])
    assert 1 <= wait <= 2
    # Within Retry-After (and a second of slack), the node is served again.
    wait_for(
        lambda: httpx.get(url, headers=headers, timeout=30).status_code == 200,
        wait + 1,
        "the node to be served again",
    )


def test_oversized_bodies_get_413_and_write_nothing(base_url: str) -> None:
    node = enroll(base_url, "chatty")
    url = f"{base_url}/v1/nodes/{node['node_id']}/heartbeat"
    huge = {"model_version": "x" * 100_000}
    reply = httpx.post(url, json=huge, headers=bearer(node["node_key"]), timeout=30)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"
    assert API.get(f"{base_url}/v1/nodes/{node['node_id']}").json()["heartbeats"] == []


def test_a_chunked_body_over_the_limit_gets_413_too(base_url: str) -> None:
    node = enroll(base_url, "chunky")
    url = f"{base_url}/v1/nodes/{node['node_id']}/heartbeat"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model_version": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    headers = {**bearer(node["node_key"]), "Content-Type": "application/json"}
    reply = httpx.post(url, content=chunks(), headers=headers, timeout=30)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"


def test_numbers_json_cannot_store_and_oversized_inputs_are_refused(base_url: str) -> None:
    """Infinity and NaN parse as JSON numbers, but a stored one made every later read of the
    node fail; huge prompts and filter lists are refused before any work."""
    node = enroll(base_url, "infinite")
    as_node = {**bearer(node["node_key"]), "Content-Type": "application/json"}
    beat = f"{base_url}/v1/nodes/{node['node_id']}/heartbeat"
    for body in ('{"uptime_s": Infinity}', '{"measured_at": 1e999}'):
        reply = httpx.post(beat, content=body, headers=as_node, timeout=30)
        assert reply.status_code == 422, reply.text
    assert API.get(f"{base_url}/v1/nodes/{node['node_id']}").status_code == 200
    search = f"{base_url}/v1/rag/search"
    nan = httpx.post(
        search,
        content='{"query": "water", "updated_after": NaN}',
        headers={**bearer(API.key), "Content-Type": "application/json"},
        timeout=30,
    )
    assert nan.status_code == 422, nan.text
    many = API.post(search, json={"query": "water", "regions": ["r"] * 1000})
    assert many.status_code == 422
    huge = [{"role": "user", "content": "x" * 200_000}] * 3
    chat = API.post(f"{base_url}/v1/chat/completions", json={"messages": huge})
    assert chat.status_code == 422 and "characters" in chat.json()["error"]["message"]


def test_an_escalation_retried_with_its_idempotency_key_is_answered_once(base_url: str) -> None:
    node = enroll(base_url, "outbox")
    headers = {**bearer(node["node_key"]), "Idempotency-Key": "sms-42"}
    body = {"node_id": node["node_id"], "message": "HELP house on fire", "region": "KE"}
    first = httpx.post(f"{base_url}/v1/evy/query", json=body, headers=headers, timeout=120)
    assert first.status_code == 200, first.text
    again = httpx.post(f"{base_url}/v1/evy/query", json=body, headers=headers, timeout=120)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_no_body_is_read_before_the_caller_is_known(base_url: str) -> None:
    junk = b"{not json" + b" " * 50_000
    for headers in ({}, bearer("bek_nosuchkey.secret")):
        reply = httpx.post(f"{base_url}/v1/knowledge/documents", content=junk, headers=headers)
        assert reply.status_code == 401, reply.text  # not 422: the body was never parsed
    # Enrolment, the one route without a key, takes a small body.
    big = {"token": "x", "name": "n", "model_version": "x" * 10_000}
    reply = httpx.post(f"{base_url}/v1/nodes/enroll", json=big, timeout=30)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"


def test_an_address_guessing_keys_or_tokens_is_slowed_down(base_url: str) -> None:
    """Last in the module: the runner's own address is held back for a moment."""
    url = f"{base_url}/v1/models"
    codes = [
        httpx.get(url, headers=bearer(f"bek_guess{i}.secret"), timeout=30).status_code
        for i in range(FAILED_AUTH_LIMIT.burst + 1)
    ]
    assert codes[0] == 401 and codes[-1] == 429, codes  # earlier tests may have spent some
    enrolment = httpx.post(f"{base_url}/v1/nodes/enroll", json={"token": "guess", "name": "n"})
    assert enrolment.status_code == 429
    held = httpx.get(url, headers=bearer("bek_guess.again"), timeout=30)
    assert held.status_code == 429 and held.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(held.headers["Retry-After"]) <= 2
    # The address recovers as its bucket refills.
    deadline = time.monotonic() + 30
    while (reply := httpx.get(url, headers=bearer("bek_guess.later"))).status_code == 429:
        assert time.monotonic() < deadline, "the address was never let through again"
        time.sleep(0.2)
    assert reply.status_code == 401
