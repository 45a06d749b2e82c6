"""Console sign-in on SQLite and a real PostgreSQL: a key opens a session, the cookie stands
for it until it ends, is signed out, or its key stops working. No Ray needed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bigevy.errors import Forbidden, Unauthorized
from bigevy.fleet.console import ConsoleSessions, csrf_token
from bigevy.fleet.models import ConsoleSession
from bigevy.fleet.roles import Role
from bigevy.fleet.service import FleetService
from tests.support.fleet import Clock, clock, enroll, fleet
from tests.support.postgres import database_url

FIXTURES = (database_url, clock, fleet)


@pytest.mark.parametrize("role", [Role.admin, Role.operator, Role.reader])
def test_a_person_signs_in_with_a_key_and_acts_with_its_role(
    fleet: FleetService, role: Role
) -> None:
    key = fleet.create_key(role)
    sessions = ConsoleSessions(fleet)
    opened = sessions.open(key.key)
    assert opened.cookie.startswith("bevysession_") and key.key not in opened.cookie
    caller = sessions.caller(opened.cookie)
    assert (caller.role, caller.key_id) == (role, key.id)
    with fleet.sessions() as session:  # only the cookie's hash is kept
        stored = session.scalars(select(ConsoleSession)).one()
    assert opened.cookie.rsplit("_", 1)[-1] not in stored.secret_hash


def test_wrong_keys_node_keys_and_forged_cookies_get_no_session(fleet: FleetService) -> None:
    sessions = ConsoleSessions(fleet)
    with pytest.raises(Unauthorized):
        sessions.open("bevy_0123456789abcdef_not-a-key")
    _, node_key = enroll(fleet)
    with pytest.raises(Forbidden):
        sessions.open(node_key)
    real = sessions.open(fleet.create_key(Role.reader).key).cookie
    for forged in ["", "nonsense", real[:-2] + "xx", real.replace("bevysession", "bevy")]:
        with pytest.raises(Unauthorized):
            sessions.caller(forged)


def test_a_session_ends_with_its_time_its_sign_out_and_its_key(
    fleet: FleetService, clock: Clock
) -> None:
    sessions = ConsoleSessions(fleet)
    key = fleet.create_key(Role.operator)
    lasting = sessions.open(key.key)
    clock.now += fleet.spec.console_session_s - 1
    assert sessions.caller(lasting.cookie).role == Role.operator
    clock.now += 2
    with pytest.raises(Unauthorized, match="over"):
        sessions.caller(lasting.cookie)

    signed_out = sessions.open(key.key)
    sessions.close(signed_out.cookie)
    with pytest.raises(Unauthorized):
        sessions.caller(signed_out.cookie)

    revoked = sessions.open(key.key)
    fleet.revoke_key(key.id)
    with pytest.raises(Unauthorized, match="no longer works"):
        sessions.caller(revoked.cookie)


def test_each_session_has_its_own_csrf_token(fleet: FleetService) -> None:
    sessions = ConsoleSessions(fleet)
    key = fleet.create_key(Role.admin).key
    one, two = sessions.open(key).cookie, sessions.open(key).cookie
    assert csrf_token(one) == csrf_token(one)
    assert csrf_token(one) != csrf_token(two)
    assert one.rsplit("_", 1)[-1] not in csrf_token(one)
