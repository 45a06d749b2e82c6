"""Console sign-in: a person presents an API key once and gets a session cookie.

The cookie is a secret of its own (`bevysession_<id>_<secret>`, hashed like keys), not the key:
the key never sits in a browser's cookie jar, and signing out ends the session without revoking
the key. A session acts with its key's role and ends when the key is revoked or expires.
Plain and blocking (SQLAlchemy), like the rest of `bigevy.fleet`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import delete, select

from bigevy.errors import Forbidden, Unauthorized
from bigevy.fleet import secrets
from bigevy.fleet.models import ApiKey, ConsoleSession
from bigevy.fleet.roles import Caller, Role
from bigevy.fleet.service import FleetService

SESSION_PREFIX = "bevysession"


@dataclass(frozen=True)
class Opened:
    cookie: str
    caller: Caller
    expires_at: float


def csrf_token(cookie: str) -> str:
    """The session's CSRF token: derived from its secret, so nothing more is stored, and a
    page of one session cannot post for another."""
    return hmac.new(cookie.encode(), b"bigevy console csrf", hashlib.sha256).hexdigest()[:32]


class ConsoleSessions:
    def __init__(self, fleet: FleetService) -> None:
        self.fleet = fleet
        self.sessions = fleet.sessions

    def open(self, key: str) -> Opened:
        """A session for whoever holds `key`; node keys are for nodes, not people."""
        caller = self.fleet.authenticate(key)
        if caller.role == Role.node:
            raise Forbidden("a node's key cannot sign in to the console", code="node_key")
        secret = secrets.new_secret()
        now = self.fleet.clock()
        expires = now + self.fleet.spec.console_session_s
        with self.sessions.begin() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
            session.add(
                ConsoleSession(
                    id=secret.id,
                    secret_hash=secret.hash,
                    key_id=caller.key_id,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return Opened(secret.reveal(SESSION_PREFIX), caller, expires)

    def caller(self, cookie: str | None) -> Caller:
        """Who the session acts for; `Unauthorized` if it is unknown, over, or its key is."""
        parsed = secrets.parse(cookie or "", SESSION_PREFIX)
        now = self.fleet.clock()
        with self.sessions() as session:
            row = session.execute(
                select(ConsoleSession, ApiKey)
                .join(ApiKey, ApiKey.id == ConsoleSession.key_id)
                .where(ConsoleSession.id == (parsed.id if parsed else ""))
            ).first()
        if row is None or parsed is None or not secrets.matches(parsed.secret, row[0].secret_hash):
            raise Unauthorized("sign in to the console", code="no_session")
        console, key = row
        if console.expires_at <= now:
            raise Unauthorized("your console session is over: sign in again", code="session_over")
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
            raise Unauthorized("the key of this session no longer works", code="revoked_api_key")
        return Caller(role=Role(key.role), key_id=key.id, node_id=key.node_id)

    def close(self, cookie: str | None) -> None:
        """Sign out: the cookie stops working at once."""
        parsed = secrets.parse(cookie or "", SESSION_PREFIX)
        if parsed is None:
            return
        with self.sessions.begin() as session:
            row = session.get(ConsoleSession, parsed.id)
            if row is not None and secrets.matches(parsed.secret, row.secret_hash):
                session.delete(row)
