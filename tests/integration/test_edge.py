"""The lilEVY edge client (the `lilevy` package in clients/lilevy), its outbox, the enrol
command and the fleet simulator, against a real Serve app: enrolment and heartbeats end to end,
errors as types, exactly-once delivery of what was queued while bigEVY was down, no
acknowledged heartbeat lost under load, and the client's wire shapes checked against the
server's OpenAPI document."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import httpx
import pytest
from lilevy.alerts import take
from lilevy.client import (
    Attempt,
    Directive,
    EdgeClient,
    Enrollment,
    HeartbeatReply,
    HeartbeatStatus,
    NodeDescription,
    Queued,
    RetryPolicy,
)
from lilevy.errors import (
    AuthError,
    Conflict,
    InFlight,
    InvalidRequest,
    Unavailable,
    error_from_response,
)
from lilevy.knowledge import Applied, PackageRejected
from lilevy.outbox import DeliveryReport, Outbox
from lilevy.simulator import Progress, simulate
from lilevy.sync import sync_knowledge
from lilevy.updates import Updater
from packaging.requirements import Requirement
from sqlalchemy import func, select

from bigevy.config import Settings
from bigevy.fleet.models import Escalation, Heartbeat
from bigevy.fleet.service import FleetService
from tests.support.cluster import API, BIGEVY, REPO, ServeCluster, free_port
from tests.support.prometheus import sample

LILEVY = REPO / "clients" / "lilevy"
#: What a lilEVY node must never need: the server's own code and its heavy stack.
HEAVY = {
    "bigevy",
    "torch",
    "ray",
    "llama_cpp",
    "sentence_transformers",
    "lancedb",
    "fastapi",
    "pydantic",
    "sqlalchemy",
    "numpy",
}
#: Quick retries: the tests wait on a refused port, not on a real outage.
FAST = RetryPolicy(attempts=3, base_s=0.05, cap_s=5.0)


def stored(fleet: FleetService, node_ids: list[str]) -> tuple[int, int]:
    """Rows in the heartbeats and escalations tables for these nodes."""
    with fleet.sessions() as session:
        beats = session.scalar(
            select(func.count()).select_from(Heartbeat).where(Heartbeat.node_id.in_(node_ids))
        )
        asked = session.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.node_id.in_(node_ids))
        )
    return int(beats or 0), int(asked or 0)


def new_token(base_url: str) -> str:
    reply = API.post(f"{base_url}/v1/enrollment-tokens", json={})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


def _dist(name: str) -> str:
    """A distribution name as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    """lilevy's dependencies as clients/lilevy/pyproject.toml declares them."""
    with open(LILEVY / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return {_dist(Requirement(line).name) for line in project["dependencies"]}


def importable_names(distributions: set[str]) -> set[str]:
    """The top-level modules of `distributions` and of what they need in turn, as installed
    (httpx brings anyio, certifi, httpcore, h11, idna; cryptography brings cffi)."""
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = _dist(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(_dist(d) in seen for d in owners)
    }


#: Run in a fresh interpreter with the allowed top-level modules (JSON) as argv[1]: import every
#: module of the installed lilevy while a finder refuses any other top-level module.
IMPORT_ALONE = """
import importlib, importlib.abc, json, pkgutil, sys

allowed = {"lilevy", *sys.stdlib_module_names, *json.loads(sys.argv[1])}
refused = []


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in allowed:
            refused.append(name)
            raise ModuleNotFoundError(f"lilevy may not import {name}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
import lilevy

modules = sorted(m.name for m in pkgutil.iter_modules(lilevy.__path__, "lilevy."))
for module in modules:
    importlib.import_module(module)
loaded = sorted({m.partition(".")[0] for m in sys.modules})
print(json.dumps({"modules": modules, "refused": refused, "loaded": loaded}))
"""


def test_lilevy_imports_with_nothing_but_its_dependencies(tmp_path: Path) -> None:
    """A node installs `lilevy` alone: every module imports with only the standard library and
    lilevy's declared dependencies (and theirs) importable; bigEVY and its stack are refused."""
    allowed = importable_names(declared_dependencies())
    assert not allowed & HEAVY, allowed & HEAVY
    done = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALONE, json.dumps(sorted(allowed))],
        cwd=tmp_path,  # the installed package, not a folder that happens to be at hand
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    shipped = {f"lilevy.{p.stem}" for p in (LILEVY / "lilevy").glob("*.py")} - {"lilevy.__init__"}
    assert set(report["modules"]) == shipped
    # Not even tried and swallowed (httpx's optional brotli and the like are fine to refuse).
    assert not {name.partition(".")[0] for name in report["refused"]} & HEAVY, report["refused"]
    assert not set(report["loaded"]) & HEAVY


def test_lilevy_declares_only_httpx_zstandard_cryptography_and_prometheus_client() -> None:
    assert declared_dependencies() == {"httpx", "zstandard", "cryptography", "prometheus-client"}
    installed = importlib.metadata.requires("lilevy") or []
    assert {_dist(Requirement(line).name) for line in installed} == declared_dependencies(), (
        "the installed lilevy is stale: pip install -e ./clients/lilevy"
    )


# -- the wire contract ----------------------------------------------------------------------------
# lilevy keeps hand-written copies of bigEVY's pydantic wire models (no pydantic on a Pi), so
# nothing but this test notices when the two drift apart. Schemas are found by their names in
# the running app's OpenAPI document (components/schemas), not imported from bigevy's modules:
# the models move between modules, their wire names are the contract.

#: lilevy's wire dataclasses for replies → the server schema each mirrors. lilevy reads every
#: field, so each must be in the server's schema with a JSON type it accepts; a field without a
#: default must be one the server always sends.
WIRE_REPLIES: dict[type, str] = {
    Enrollment: "Enrollment",  # EdgeClient.enroll: the enrolment reply
    HeartbeatReply: "HeartbeatReply",  # EdgeClient.heartbeat
    Directive: "Directive",  # HeartbeatReply.directives
}
#: lilevy's wire dataclasses for requests → the server schema of the body they go into: each
#: field must be in it, with a type and (for a Literal) values the server takes.
WIRE_REQUESTS: dict[type, str] = {
    NodeDescription: "EnrollRequest",  # EdgeClient.enroll sends {"token": ..., **NodeDescription}
    HeartbeatStatus: "HeartbeatIn",  # EdgeClient.heartbeat
}
#: Replies lilevy reads as plain dicts: server schema → {key lilevy reads: the type it expects}.
READ_KEYS: dict[str, dict[str, Any]] = {
    # lilevy.alerts (take, EdgeAlerts.receive): a signed alert, streamed or in a heartbeat reply.
    "SignedAlert": {"alert_id": str, "version": int, "alert": str, "signature": str},
    # lilevy.sync.sync_knowledge: GET /v1/sync/manifest.
    "SignedManifest": {"package_id": str, "manifest": str, "signature": str, "download_url": str},
    # EdgeClient.escalate returns the escalation answer: `sms` is the reply a node sends back,
    # lilevy.simulator counts `sms_segments`.
    "EvyAnswer": {"sms": str, "sms_segments": int},
    # lilevy.simulator: the enrolment token it makes with the admin key.
    "TokenCreated": {"token": str},
}
#: Lists in replies whose items lilevy reads as another schema above: (schema, field) → items.
READ_ITEMS = {
    ("HeartbeatReply", "directives"): "Directive",
    ("HeartbeatReply", "alerts"): "SignedAlert",
}

_JSON_TYPE = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
    list: "array",
    dict: "object",
}


def python_types(annotation: Any) -> set[str]:
    """The JSON types a Python annotation stands for; {"any"} for Any."""
    if annotation is Any:
        return {"any"}
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return set().union(*(python_types(a) for a in get_args(annotation)))
    if origin is Literal:
        return {_JSON_TYPE[type(v)] for v in get_args(annotation)}
    if dataclasses.is_dataclass(annotation):
        return {"object"}
    return {_JSON_TYPE[origin or annotation]}


def literal_values(annotation: Any) -> set[Any]:
    """The values of the Literal types in an annotation (empty if none)."""
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    return set().union(*(literal_values(a) for a in get_args(annotation)))


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_types(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types a JSON schema admits; {"any"} when it does not say."""
    schema = resolve(doc, schema)
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return set().union(*(schema_types(doc, s) for s in schema[combined]))
    if "type" in schema:
        kind = schema["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    if "const" in schema:
        return {_JSON_TYPE[type(schema["const"])]}
    if "enum" in schema:
        return {_JSON_TYPE[type(v)] for v in schema["enum"]}
    return {"any"}


def schema_values(doc: dict[str, Any], schema: dict[str, Any]) -> set[Any] | None:
    """The values an enum or const schema admits; None when any value of its type will do."""
    schema = resolve(doc, schema)
    if "const" in schema:
        return {schema["const"]}
    if "enum" in schema:
        return set(schema["enum"])
    parts = [schema_values(doc, s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if parts and all(p is not None for p in parts):
        return set().union(*parts)  # type: ignore[arg-type]
    return None


def accepts(receiver: set[str], sent: set[str]) -> bool:
    """Whether a side expecting `receiver` types takes every type in `sent` (a JSON number
    takes an integer)."""
    if "any" in receiver:
        return True
    return all(t in receiver or (t == "integer" and "number" in receiver) for t in sent)


def reply_problems(
    doc: dict[str, Any], name: str, reads: dict[str, Any], needed: set[str]
) -> list[str]:
    """What is wrong with lilevy reading `reads` ({field: Python type}) from schema `name`."""
    schema = doc["components"]["schemas"].get(name)
    if schema is None:
        return [f"{name}: no such schema in the server's OpenAPI document"]
    properties, required = schema.get("properties", {}), set(schema.get("required", []))
    problems = []
    for field, annotation in reads.items():
        if field not in properties:
            problems.append(
                f"{name}.{field}: lilevy reads it, the server's schema has no such field"
            )
            continue
        sent, taken = schema_types(doc, properties[field]), python_types(annotation)
        if not accepts(taken, sent):
            problems.append(
                f"{name}.{field}: the server sends {sorted(sent)}, lilevy takes {sorted(taken)}"
            )
        if field in needed and field not in required:
            problems.append(f"{name}.{field}: lilevy needs it, the server may leave it out")
    return problems


def request_schema(doc: dict[str, Any], method: str, path: str) -> str | None:
    """The name of the body schema of the operation that serves `method path`."""
    by_literalness = sorted(doc["paths"].items(), key=lambda item: item[0].count("{"))
    for template, operations in by_literalness:
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
        )
        if re.fullmatch(pattern, path) and method.lower() in operations:
            body = operations[method.lower()].get("requestBody", {})
            ref = body.get("content", {}).get("application/json", {}).get("schema", {})
            return str(ref["$ref"]).rsplit("/", 1)[-1] if "$ref" in ref else None
    return None


def request_problems(doc: dict[str, Any], name: str, where: str, body: dict[str, Any]) -> list[str]:
    """What the server would refuse in `body`, a request lilevy sent to schema `name`."""
    schema = doc["components"]["schemas"][name]
    properties, required = schema.get("properties", {}), set(schema.get("required", []))
    problems = [
        f"{name}.{field}: the server requires it, lilevy does not send it ({where})"
        for field in sorted(required - body.keys())
    ]
    for field, value in body.items():
        if field not in properties:
            problems.append(
                f"{name}.{field}: lilevy sends it, the server's schema has no such field ({where})"
            )
            continue
        taken = schema_types(doc, properties[field])
        if not accepts(taken, {_JSON_TYPE[type(value)]}):
            problems.append(
                f"{name}.{field}: lilevy sends {value!r}, the server takes {sorted(taken)} "
                f"({where})"
            )
    return problems


class _StandInStore:
    """Stands in for EdgeKnowledge and EdgeAlerts (whose checks are tested against the real
    server elsewhere), so the calls around them can be recorded."""

    def __init__(self, rejects: bool = False) -> None:
        self.rejects = rejects

    def apply(self, manifest: str, signature: str, payload: bytes) -> Applied:
        if self.rejects:
            raise PackageRejected("the manifest's signature is not bigEVY's")
        return Applied("pkg-1", "delta", 0, 1, 1, 0, "0" * 64)

    def receive(self, signed: dict[str, Any]) -> None:
        return None


def requests_lilevy_sends(work_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request body lilevy sends, as it sends it: (method, path, body) of each call of
    the client against a stand-in bigEVY (httpx.MockTransport) that answers just enough."""
    sent: list[tuple[str, str, dict[str, Any]]] = []
    manifest = {
        "package_id": "pkg-1",
        "manifest": json.dumps({"payload_bytes": 3}),
        "signature": "",
        "download_url": "/v1/sync/packages/pkg-1",
    }
    replies = {
        "/v1/nodes/enroll": {
            "node_id": "node-1",
            "node_key": "bevy_k",
            "signing_public_key": "",
            "heartbeat_interval_s": 60,
        },
        "/v1/nodes/node-1/heartbeat": {
            "node_id": "node-1",
            "state": "online",
            "server_time": 0.0,
            "heartbeat_interval_s": 60,
            "directives": [],
        },
        "/v1/sync/manifest": manifest,
    }

    def bigevy(request: httpx.Request) -> httpx.Response:
        if request.content:
            sent.append((request.method, request.url.path, json.loads(request.content)))
        if request.url.path == manifest["download_url"]:
            return httpx.Response(200, content=b"zst")
        return httpx.Response(200, json=replies.get(request.url.path, {}))

    async def every_call() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(bigevy)) as http:
            edge = EdgeClient("http://bigevy.test", http=http, retry=FAST)
            await edge.enroll("bevyenroll_token", NodeDescription(name="contract"))
            await edge.heartbeat(HeartbeatStatus())
            full = HeartbeatStatus(
                battery_percent=50.0,
                power_source="solar",
                sms_in=3,
                faq_answers=2,
                knowledge_revision=3,
                free_storage_mb=9.5,
                connectivity=["sms"],
            )
            await edge.heartbeat(full)
            await edge.escalate("is the bridge open?")
            await edge.escalate(
                "is the bridge open?", language="sw", region="KE", max_sms_segments=2
            )
            signed = {"alert_id": "alert-1", "version": 2, "alert": "{}", "signature": ""}
            await take(edge, _StandInStore(), signed)  # type: ignore[arg-type]
            await sync_knowledge(edge, _StandInStore(), work_dir)  # type: ignore[arg-type]
            rejecting = _StandInStore(rejects=True)
            with pytest.raises(PackageRejected):
                await sync_knowledge(edge, rejecting, work_dir)  # type: ignore[arg-type]
            rollback = {"rollout_id": "ro-1", "kind": "config", "version": "c1"}
            await Updater(edge, work_dir / "slots", "").rollback(rollback)

    asyncio.run(every_call())
    return sent


def test_lilevys_wire_shapes_match_the_servers_openapi_document(
    base_url: str, tmp_path: Path
) -> None:
    """What lilevy reads is what the running server sends, and what it sends the server takes:
    a field renamed on either side fails here, not on a node in the field."""
    reply = API.get(f"{base_url}/openapi.json")
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    schemas = doc["components"]["schemas"]
    problems: list[str] = []

    for cls, name in WIRE_REPLIES.items():
        hints = get_type_hints(cls)
        fields = dataclasses.fields(cls)
        needed = {
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        problems += reply_problems(doc, name, {f.name: hints[f.name] for f in fields}, needed)
    for name, keys in READ_KEYS.items():
        problems += reply_problems(doc, name, keys, set(keys))
    for (name, field), items in READ_ITEMS.items():
        ref = schemas.get(name, {}).get("properties", {}).get(field, {}).get("items", {})
        if ref.get("$ref", "").rsplit("/", 1)[-1] != items:
            problems.append(
                f"{name}.{field}: lilevy reads its items as {items}, the server sends {ref}"
            )

    for cls, name in WIRE_REQUESTS.items():
        properties = schemas.get(name, {}).get("properties", {})
        for field, annotation in get_type_hints(cls).items():
            if field not in properties:
                problems.append(
                    f"{name}.{field}: lilevy sends it, the server's schema has no such field"
                )
                continue
            taken = schema_types(doc, properties[field])
            sends = python_types(annotation)
            if not accepts(taken, sends):
                problems.append(
                    f"{name}.{field}: lilevy sends {sorted(sends)}, the server takes "
                    f"{sorted(taken)}"
                )
            allowed = schema_values(doc, properties[field])
            refused = literal_values(annotation) - (allowed or set())
            if allowed is not None and refused:
                problems.append(
                    f"{name}.{field}: lilevy may send {sorted(refused)}, the server takes "
                    f"{sorted(allowed)}"
                )

    sent = requests_lilevy_sends(tmp_path)
    used = set()
    for method, path, body in sent:
        name = request_schema(doc, method, path)
        if name is None:
            problems.append(
                f"{method} {path}: lilevy sends a body, the server has no schema for it"
            )
            continue
        used.add(name)
        problems += request_problems(doc, name, f"{method} {path}", body)
    assert set(WIRE_REQUESTS.values()) <= used, used  # the table names the schemas routes use
    assert {"EvyQuery", "AlertAck", "AckIn", "SyncErrorIn", "RolloutReport"} <= used, used

    assert not problems, "\n".join(problems)


def test_enrolment_heartbeat_and_typed_errors(base_url: str) -> None:
    attempts: list[Attempt] = []

    async def scenario() -> None:
        token = new_token(base_url)
        async with EdgeClient(base_url, retry=FAST, on_attempt=attempts.append) as edge:
            description = NodeDescription(
                name="edge-kisumu", region="KE", phone_number="+254 700 111222"
            )
            enrolled = await edge.enroll(token, description)
            assert isinstance(enrolled, Enrollment)
            assert enrolled.node_key.startswith("bevy_") and edge.node_id == enrolled.node_id
            assert len(enrolled.signing_public_key) == 44

            reply = await edge.heartbeat(
                HeartbeatStatus(battery_percent=71.5, power_source="solar", sms_in=4, sms_out=3)
            )
            assert isinstance(reply, HeartbeatReply)
            assert reply.node_id == enrolled.node_id and reply.state == "online"
            assert reply.heartbeat_interval_s > 0 and reply.directives == []
            mine = await edge.node()
            assert mine["state"] == "online" and mine["heartbeats"][0]["sms_in"] == 4

            attempts.clear()
            with pytest.raises(InvalidRequest) as invalid:
                await edge.heartbeat({"battery_percent": 140})
            assert invalid.value.status == 422 and invalid.value.param == "battery_percent"
            assert len(attempts) == 1  # a refused request is never retried

            with pytest.raises(Conflict) as reused:
                await EdgeClient(base_url, http=edge.http).enroll(token, description)
            assert reused.value.code == "enrollment_token_used" and reused.value.status == 409

            forged = EdgeClient(base_url, key="bevy_nope_nope", node_id=enrolled.node_id)
            async with forged:
                with pytest.raises(AuthError) as denied:
                    await forged.heartbeat(HeartbeatStatus())
            assert denied.value.status == 401 and "invalid API key" in denied.value.message

        shown = API.get(f"{base_url}/v1/nodes/{enrolled.node_id}").json()
        assert shown["state"] == "online" and shown["region"] == "KE"
        assert [h["battery_percent"] for h in shown["heartbeats"]] == [71.5]

    asyncio.run(scenario())


def test_two_commands_enrol_a_node_that_shows_online(base_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BIGEVY_API_KEY": API.key,
        "BIGEVY_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }

    def bigevy(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [BIGEVY, *args, "--url", base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    token = re.search(r"bevyenroll_\S+", bigevy("nodes", "token", "--region", "KE").stdout)
    assert token is not None
    enrolled = bigevy("nodes", "enroll", token.group(0), "--name", "cli-node", "--phone", "+254 7")
    node_id = re.search(r"node (node-[0-9a-f]+) is online", enrolled.stdout)
    assert node_id is not None, enrolled.stdout
    state_file = tmp_path / "data" / "edge" / f"{node_id.group(1)}.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    state = json.loads(state_file.read_text())
    assert state["node_id"] == node_id.group(1) and state["base_url"] == base_url
    assert state["node_key"].startswith("bevy_") and len(state["signing_public_key"]) == 44

    listed = bigevy("nodes", "list").stdout
    row = next(line for line in listed.splitlines() if node_id.group(1) in line)
    assert "cli-node" in row and "online" in row

    subscribed = bigevy(
        "nodes", "subscribe", node_id.group(1), "--budget-mb", "8", "--category", "emergency"
    ).stdout
    assert "emergency" in subscribed and "8 MiB" in subscribed
    synced = bigevy("sync", "status", node_id.group(1)).stdout
    assert node_id.group(1) in synced and "0/" in synced  # enrolled, nothing applied yet

    again = subprocess.run(
        [BIGEVY, "nodes", "enroll", token.group(0), "--name", "x", "--url", base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 1 and "already used" in again.stdout


def test_a_short_simulation_loses_no_acknowledged_heartbeat(
    base_url: str, fleet: FleetService
) -> None:
    port, scraped = free_port(), []

    def scrape(progress: Progress) -> None:
        # Once the load is over: the fleet's metrics endpoint, while the run still serves it.
        if progress.phase == "draining":
            scraped.append(httpx.get(f"http://127.0.0.1:{port}/metrics").text)

    report = simulate(
        base_url,
        API.key,
        5,
        10,
        heartbeat_interval_s=1.0,
        question_every_s=15.0,
        seed=7,
        metrics_port=port,
        on_progress=scrape,
    )
    assert report.nodes == 5 and report.kinds["enroll"].ok == 5
    assert report.server_errors == 0, report.responses
    assert not report.failures, report.failures
    assert report.acknowledged_heartbeats >= 5 * 5  # each node beat at least ~half its slots
    beats, asked = stored(fleet, report.node_ids)
    assert report.acknowledged_heartbeats == beats
    assert report.kinds["escalation"].ok == asked
    assert report.outbox_depth == 0 and report.dead_letters == 0
    assert report.heartbeats_per_s > 0 and report.kinds["heartbeat"].p(95) is not None
    (text,) = scraped
    assert sample(text, "lilevy_sms_received_total") > 0
    sent = sample(text, "lilevy_heartbeats_total", outcome="sent")
    assert 0 < sent <= report.acknowledged_heartbeats
    answered = sample(text, "lilevy_escalations_total", outcome="answered")
    assert answered <= report.kinds["escalation"].ok


def test_a_request_still_being_answered_is_kept_for_later_not_given_up() -> None:
    """The outbox gives up on a 409 (a used enrolment token) but not on this one."""
    body = {"error": {"message": "still being answered", "code": "idempotency_key_in_use"}}
    in_use = error_from_response(httpx.Response(409, json=body, headers={"Retry-After": "5"}))
    assert isinstance(in_use, InFlight) and in_use.transient and in_use.retry_after == 5
    used = {"error": {"message": "token already used", "code": "conflict"}}
    assert not error_from_response(httpx.Response(409, json=used)).transient


def test_a_retry_while_the_first_attempt_is_answered_gets_that_answer(
    base_url: str, fleet: FleetService
) -> None:
    """The node gave up waiting and sent the question again, but bigEVY is still answering
    it: the retry gets that answer (not 409, which once dead-lettered the question in the
    outbox for good), and the question counts once."""

    async def scenario() -> tuple[str, list[dict]]:
        async with EdgeClient(base_url, retry=FAST) as edge:
            node = await edge.enroll(new_token(base_url), NodeDescription(name="impatient"))
        who = {"key": node.node_key, "node_id": node.node_id}
        question = "how long should I boil river water before drinking it"

        async def ask(after_s: float) -> dict:
            await asyncio.sleep(after_s)  # the retry leaves while the first is answered
            async with EdgeClient(base_url, retry=FAST, **who) as edge:
                reply = await edge.escalate(question, region="KE", idempotency_key="sms-7")
            assert isinstance(reply, dict)
            return reply

        return node.node_id, list(await asyncio.gather(ask(0.0), ask(0.02), ask(0.05)))

    node_id, replies = asyncio.run(scenario())
    assert replies[0]["sms"] and all(r == replies[0] for r in replies)
    with fleet.sessions() as session:
        asked = select(func.count()).select_from(Escalation).where(Escalation.node_id == node_id)
        assert session.scalar(asked) == 1


def test_the_outbox_delivers_exactly_once_after_an_outage(
    serve_cluster: ServeCluster,
    settings: Settings,
    base_url: str,
    fleet: FleetService,
    tmp_path: Path,
) -> None:
    """Last in this module: it stops Serve and starts it again."""
    from ray import serve

    path = tmp_path / "outbox.db"

    async def enroll() -> Enrollment:
        async with EdgeClient(base_url, retry=FAST) as edge:
            return await edge.enroll(new_token(base_url), NodeDescription(name="outage"))

    node = asyncio.run(enroll())

    def client(outbox: Outbox) -> EdgeClient:
        return EdgeClient(
            base_url, key=node.node_key, node_id=node.node_id, outbox=outbox, retry=FAST
        )

    async def while_down(outbox: Outbox) -> list[Queued]:
        queued = []
        async with client(outbox) as edge:
            for i, kind in enumerate("hheh" + "e"):
                if kind == "h":
                    call = edge.heartbeat(HeartbeatStatus(sms_in=i), queue_if_offline=True)
                else:
                    call = edge.escalate(
                        f"HELP house on fire {i}", region="KE", queue_if_offline=True
                    )
                result = await call
                assert isinstance(result, Queued), result
                queued.append(result)
            with pytest.raises(Unavailable):  # without queue_if_offline, the error is raised
                await edge.heartbeat(HeartbeatStatus())
            report = await edge.flush()
            assert report.delivered == [] and report.remaining == 5
            assert isinstance(report.stopped_by, Unavailable)
        return queued

    serve.shutdown()
    try:
        with Outbox(path) as outbox:
            queued = asyncio.run(while_down(outbox))
        assert {q.reason.code for q in queued} == {"connection_error"}
    finally:
        serve.start(http_options={"host": "127.0.0.1", "port": serve_cluster.port})
        serve_cluster.deploy(settings)

    with Outbox(path) as outbox:  # reopened: the queue survived the "process"
        assert outbox.depth() == 5
        entries = outbox.entries()
        assert [e.id for e in entries] == [q.id for q in queued]
        assert entries[0].attempts == 1 and "unreachable" in (entries[0].last_error or "")

        async def flush() -> DeliveryReport:
            async with client(outbox) as edge:
                return await edge.flush()

        def deliver() -> DeliveryReport:
            return asyncio.run(flush())

        report = deliver()
        assert report.stopped_by is None and report.remaining == 0 and outbox.depth() == 0
        assert [d.entry.kind for d in report.delivered] == ["heartbeat"] * 2 + [
            "escalation",
            "heartbeat",
            "escalation",
        ]
        answers = [d.reply for d in report.delivered if d.entry.kind == "escalation"]
        assert all(a["triage"]["emergency"] and a["triage"]["kind"] == "fire" for a in answers)
        assert stored(fleet, [node.node_id]) == (3, 2)

        # A crash after bigEVY acknowledged but before the rows went: the same entries again.
        for done in report.delivered[1:3]:
            outbox.put(
                done.entry.kind, done.entry.path, done.entry.body, idempotency_key=done.entry.id
            )
        again = deliver()
        assert len(again.delivered) == 2 and outbox.depth() == 0
        assert again.delivered[1].replayed and again.delivered[1].reply == answers[0]
        assert stored(fleet, [node.node_id]) == (3, 2)

        # Refused for good: dead-lettered with bigEVY's error; the entries around it go.
        heartbeat = report.delivered[0].entry.path
        outbox.put("heartbeat", heartbeat, {"sms_in": 1})
        bad = outbox.put("heartbeat", heartbeat, {"battery_percent": 140})
        outbox.put("heartbeat", heartbeat, {"sms_in": 2})
        mixed = deliver()
        assert len(mixed.delivered) == 2 and [d.entry.id for d in mixed.dead_lettered] == [bad]
        letters = outbox.dead_letters()
        assert [(d.entry.id, d.status) for d in letters] == [(bad, 422)]
        assert letters[0].error["param"] == "battery_percent"
        assert outbox.depth() == 0 and stored(fleet, [node.node_id]) == (5, 2)
