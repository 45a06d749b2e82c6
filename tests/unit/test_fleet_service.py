"""The fleet's database layer on SQLite and on a real PostgreSQL: migrations from empty,
keys, enrolment, heartbeats and node state as time passes. No Ray needed."""

from __future__ import annotations

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from bigevy.alerts.service import AlertService
from bigevy.errors import BigEvyError, Conflict, NotFound, Unauthorized
from bigevy.fleet.db import make_engine, upgrade
from bigevy.fleet.models import ApiKey, Base, Escalation, Heartbeat, Node
from bigevy.fleet.roles import Role
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import AlertIn
from bigevy.http.fleet.protocol import EnrollRequest, HeartbeatIn
from tests.support.fleet import Clock, clock, enroll, fleet
from tests.support.postgres import database_url

FIXTURES = (database_url, clock, fleet)


def count(fleet: FleetService, model: type) -> int:
    with fleet.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def refused(call: object, error: type[BigEvyError], code: str | None = None) -> BigEvyError:
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]
    if code is not None:
        assert caught.value.code == code
    return caught.value


def test_keys_are_shown_once_stored_hashed_and_checked(fleet: FleetService, clock: Clock) -> None:
    first = fleet.bootstrap_admin()
    assert first is not None and first.startswith("bevy_")
    assert fleet.bootstrap_admin() is None  # there is an admin already
    assert fleet.authenticate(first).role == Role.admin
    with fleet.sessions() as session:
        stored = session.scalars(select(ApiKey)).one()
        secret = first.split("_", 2)[2]  # the secret itself may contain "_"
        assert len(secret) > 16 and secret not in stored.secret_hash  # only a hash is kept

    refused(lambda: fleet.authenticate(None), Unauthorized, "missing_api_key")
    refused(lambda: fleet.authenticate("bevy_nothing_here"), Unauthorized, "invalid_api_key")
    refused(lambda: fleet.authenticate(first[:-2] + "xx"), Unauthorized, "invalid_api_key")

    reader = fleet.create_key(Role.reader, "dashboards", expires_in_s=3600)
    assert fleet.authenticate(reader.key).role == Role.reader
    clock.now += 3601
    refused(lambda: fleet.authenticate(reader.key), Unauthorized, "expired_api_key")

    operator = fleet.create_key(Role.operator, "ops")
    rotated = fleet.rotate_key(operator.id)
    assert rotated.rotated_from == operator.id and rotated.role == Role.operator
    refused(lambda: fleet.authenticate(operator.key), Unauthorized, "revoked_api_key")
    assert fleet.authenticate(rotated.key).key_id == rotated.id
    refused(lambda: fleet.rotate_key(operator.id), Conflict)
    fleet.revoke_key(rotated.id)
    refused(lambda: fleet.authenticate(rotated.key), Unauthorized, "revoked_api_key")
    refused(lambda: fleet.revoke_key("no-such-key"), NotFound)


def test_enrolment_is_one_time_and_refusals_write_nothing(
    fleet: FleetService, clock: Clock
) -> None:
    token = fleet.create_token(600, "KE", "for the Kisumu clinic", None)
    enrolled = fleet.enroll(
        EnrollRequest(token=token.token, name="kisumu-1", region="elsewhere", storage_mb=512)
    )
    assert enrolled.node_id.startswith("node-") and enrolled.signing_public_key
    caller = fleet.authenticate(enrolled.node_key)
    assert (caller.role, caller.node_id) == (Role.node, enrolled.node_id)
    assert fleet.get_node(enrolled.node_id).region == "KE"  # the token's region wins
    assert fleet.node_region(enrolled.node_id) == "KE"  # what answering the node reads
    refused(lambda: fleet.node_region("node-unknown"), NotFound)

    nodes, keys = count(fleet, Node), count(fleet, ApiKey)
    again = EnrollRequest(token=token.token, name="impostor")
    refused(lambda: fleet.enroll(again), Conflict, "enrollment_token_used")
    late = fleet.create_token(600, None, "", None)
    clock.now += 601
    refused(
        lambda: fleet.enroll(EnrollRequest(token=late.token, name="late")),
        Unauthorized,
        "enrollment_token_expired",
    )
    forged = EnrollRequest(token=late.token[:-3] + "abc", name="forger")
    refused(lambda: fleet.enroll(forged), Unauthorized, "invalid_enrollment_token")
    assert (count(fleet, Node), count(fleet, ApiKey)) == (nodes, keys)


def test_heartbeats_make_a_node_online_then_stale_then_offline(
    fleet: FleetService, clock: Clock
) -> None:
    node_id, _ = enroll(fleet, region="KE")
    other, _ = enroll(fleet, region="UG")
    assert fleet.get_node(node_id).state == "never_seen"

    beat = HeartbeatIn(battery_percent=81, power_source="solar", sms_in=3, queue_depth=1)
    assert fleet.heartbeat(node_id, beat, "beat-1") is False
    assert fleet.heartbeat(node_id, beat, "beat-1") is True  # the outbox retried: stored once
    fleet.heartbeat(other, beat, None)
    assert count(fleet, Heartbeat) == 2
    node = fleet.get_node(node_id)
    assert node.state == "online" and node.last_status["battery_percent"] == 81
    assert [h.sms_in for h in node.heartbeats] == [3]

    clock.now += 200
    assert fleet.get_node(node_id).state == "stale"
    fleet.heartbeat(other, beat, None)
    online, total = fleet.list_nodes(["online"], [], 0, 100)
    assert [n.id for n in online] == [other] and total == 1
    clock.now += 1800
    assert [n.id for n in fleet.list_nodes(["offline"], ["KE"], 0, 100)[0]] == [node_id]

    fleet.revoke_node(node_id)
    assert fleet.get_node(node_id).state == "revoked"
    refused(lambda: fleet.heartbeat(node_id, beat, None), Conflict, "node_revoked")
    refused(lambda: fleet.heartbeat("node-unknown", beat, None), NotFound)


def test_a_reply_is_reserved_before_it_is_given_so_retries_are_answered_once(
    fleet: FleetService, clock: Clock
) -> None:
    node_id, _ = enroll(fleet)
    assert fleet.claim_reply(node_id, "sms-1", "/v1/evy/query") is None
    refused(lambda: fleet.claim_reply(node_id, "sms-1", "/v1/evy/query"), Conflict)
    fleet.record_escalation(
        reply=(node_id, "sms-1", {"sms": "Call 112 now."}),
        node_id=node_id,
        language="en",
        region="KE",
        message_chars=12,
        emergency_kind="fire",
        model="knowledge-base",
        sms_segments=1,
        latency_ms=40.0,
    )
    assert fleet.claim_reply(node_id, "sms-1", "/v1/evy/query") == (200, {"sms": "Call 112 now."})

    assert fleet.claim_reply(node_id, "sms-2", "/v1/evy/query") is None
    fleet.release_reply(node_id, "sms-2")  # answering failed: a retry is answered afresh
    assert fleet.claim_reply(node_id, "sms-2", "/v1/evy/query") is None
    clock.now += 601  # the replica answering it died: its reservation is taken over
    assert fleet.claim_reply(node_id, "sms-2", "/v1/evy/query") is None


def _alert(**fields: object) -> AlertIn:
    return AlertIn(
        **{
            "identifier": "flood-1",
            "sender": "met.example",
            "event": "Flood",
            "severity": "Severe",
            "urgency": "Immediate",
            "headline": "River flooding",
            "regions": ["KE"],
            "expires": time.time() + 3600,
            **fields,
        }
    )


def test_an_alert_is_named_within_its_origin(fleet: FleetService) -> None:
    """A feed cannot update or cancel an operator's alert, or another feed's, by naming the
    same CAP sender and identifier."""
    alerts = AlertService(fleet)
    ours, created = alerts.post(_alert(), "key-1")
    assert created and ours.origin == "operator"
    theirs, created = alerts.post(_alert(headline="Rewritten"), None, "source:rogue")
    assert created and theirs.id != ours.id and theirs.origin == "source:rogue"
    refused(lambda: alerts.post(_alert(msg_type="Cancel"), None, "source:other"), NotFound)
    alerts.post(_alert(msg_type="Cancel"), None, "source:rogue")
    kept = alerts.get(ours.id)
    assert kept.status == "active" and kept.headline == "River flooding" and kept.version == 1


def test_alerts_from_before_origins_keep_theirs_as_operators(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO alerts (id, sender, identifier, version, status, event, severity, "
                "urgency, regions, headline, sent, expires, created_at, updated_at, signed, "
                "signature) VALUES ('alert-old', 's', 'i', 1, 'active', 'e', 'Severe', "
                "'Immediate', '[\"KE\"]', 'h', 0, 9e9, 0, 0, '{}', 'sig')"
            )
        )
    upgrade(engine)
    with engine.begin() as connection:
        origin = connection.execute(text("SELECT origin FROM alerts")).scalar_one()
        assert origin == "operator"
        # The same pair from another origin is another alert now.
        connection.execute(
            text(
                "INSERT INTO alerts (id, origin, sender, identifier, version, status, event, "
                "severity, urgency, regions, headline, sent, expires, created_at, updated_at, "
                "signed, signature) VALUES ('alert-new', 'source:feed', 's', 'i', 1, 'active', "
                "'e', 'Severe', 'Immediate', '[\"KE\"]', 'h', 0, 9e9, 0, 0, '{}', 'sig')"
            )
        )
    engine.dispose()


def test_a_node_has_a_share_of_the_review_queue(fleet: FleetService) -> None:
    from bigevy.fleet.contributions import ContributionQueue
    from bigevy.http.contributions.protocol import ContributedDocument

    fleet.spec = fleet.spec.model_copy(update={"max_pending_contributions": 2})
    queue = ContributionQueue(fleet)
    node_id, _ = enroll(fleet)
    docs = [ContributedDocument(title=f"Note {i}", text=f"Market day {i}.") for i in range(3)]
    first = queue.submit(node_id, docs[:2])
    assert queue.submit(node_id, docs[:1]) == first[:1]  # a retry adds nothing: let through
    refused(lambda: queue.submit(node_id, docs[2:]), Conflict, "review_queue_full")
    queue.decide(first[0], "rejected", None, "unclear")
    assert len(queue.submit(node_id, docs[2:])) == 1  # reviewed: room again


def test_an_unused_enrolment_token_can_be_revoked(fleet: FleetService, clock: Clock) -> None:
    unused = fleet.create_token(None, None, "for the market node", None)
    fleet.revoke_token(unused.id)
    refused(lambda: fleet.enroll(EnrollRequest(token=unused.token, name="late")), Unauthorized)
    used = fleet.create_token(None, None, "", None)
    fleet.enroll(EnrollRequest(token=used.token, name="on time"))
    refused(lambda: fleet.revoke_token(used.id), Conflict, "token_used")
    refused(lambda: fleet.revoke_token("tok-none"), NotFound)


def test_escalation_records_and_kept_replies_are_forgotten_in_time(
    fleet: FleetService, clock: Clock
) -> None:
    assert fleet.claim_reply("node-a", "sms-1", "/v1/evy/query") is None
    fleet.record_escalation(
        reply=("node-a", "sms-1", {"sms": "Boil it."}),
        language="en",
        message_chars=40,
        model="knowledge-base",
        sms_segments=1,
        latency_ms=90.0,
    )
    assert fleet.claim_reply("node-a", "sms-1", "/v1/evy/query") == (200, {"sms": "Boil it."})
    clock.now += 2 * 86400
    fleet.forget_past()
    assert fleet.claim_reply("node-a", "sms-1", "/v1/evy/query") is None  # answered afresh
    assert count(fleet, Escalation) == 1  # kept for analytics
    clock.now += 90 * 86400
    fleet.forget_past()
    assert count(fleet, Escalation) == 0


def test_the_same_alert_sent_or_posted_at_once_from_many_places_is_one(
    fleet: FleetService,
) -> None:
    """Two replicas send or post the same alert at the same moment: no IntegrityError, one
    row, every send counted."""
    from concurrent.futures import ThreadPoolExecutor

    alerts = AlertService(fleet)
    node_id, _ = enroll(fleet, region="KE")
    body = _alert()
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda _: alerts.post(body, "key-1")[0].id, range(8)))
    assert len(set(posted)) == 1
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: alerts.mark_sent(node_id, [(posted[0], 1)], "stream"), range(8)))
    (delivery,) = alerts.get(posted[0]).deliveries or []
    assert delivery.sends == 8 and delivery.status == "sent"


def test_an_accept_and_a_reject_at_once_decide_once(fleet: FleetService) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bigevy.fleet.contributions import ContributionQueue
    from bigevy.http.contributions.protocol import ContributedDocument

    queue = ContributionQueue(fleet)
    node_id, _ = enroll(fleet)
    (item,) = queue.submit(node_id, [ContributedDocument(title="Well", text="The well is dry.")])
    decisions = [("accepted", "contributed/x"), ("rejected", None)] * 4

    def decide(d: tuple[str, str | None]) -> str:
        try:
            return queue.decide(item, d[0], None, "", d[1]).status
        except Conflict:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(decide, decisions))
    final = queue.get(item).status
    assert final in ("accepted", "rejected")
    other = "rejected" if final == "accepted" else "accepted"
    assert other not in outcomes  # the loser was told, never recorded


def test_a_reservation_left_by_a_dead_replica_is_taken_over_soon(
    fleet: FleetService, clock: Clock
) -> None:
    """The replica answering touches its reservation; one that died stops, and a retry takes
    it over within half a minute rather than being refused for ten."""
    assert fleet.claim_reply("node-a", "sms-9", "/v1/evy/query") is None
    clock.now += 25
    fleet.touch_reply("node-a", "sms-9")  # still answering
    clock.now += 25
    refused(lambda: fleet.claim_reply("node-a", "sms-9", "/v1/evy/query"), Conflict)
    clock.now += 31  # no touch since: the replica died
    assert fleet.claim_reply("node-a", "sms-9", "/v1/evy/query") is None


def test_the_migrations_build_the_tables_the_models_describe(fleet: FleetService) -> None:
    """A column a model has and no migration made would fail at the first query in use."""
    with fleet.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
