"""Who may call what. Every route declares its roles with `allow(...)`; the app's
authenticator says who the caller is.

`KeyAuthenticator` checks API keys (`Authorization: Bearer <key>`, as OpenAI clients send
them) against the fleet database, in `AuthenticateFirst` before any body is read. Only
`/healthz`, `/readyz` and enrolment (its token is in the body) go without. The console's
pages (`/console`) are for people: a session cookie stands for the key
(`bigevy/http/console/guard.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Protocol

from fastapi import Depends, Request

from bigevy.errors import BigEvyError, Forbidden, RateLimited, Unauthorized
from bigevy.fleet.console import ConsoleSessions
from bigevy.fleet.roles import ADMINS, ANY_ROLE, OPERATORS, Caller, Role
from bigevy.fleet.service import FleetService
from bigevy.http.bodylimit import ASGIApp, Receive, Scope, Send, limited
from bigevy.http.console.guard import ConsoleGate, is_console
from bigevy.http.errors import error_response
from bigevy.http.ratelimit import TokenBuckets

__all__ = ["ADMINS", "ANY_ROLE", "OPERATORS", "Authenticator", "Caller", "Role", "allow"]


class Authenticator(Protocol):
    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller: ...


#: Routes anyone may call, with no body.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
#: The route a node without a key calls: it presents its enrolment token in the body.
ENROL_PATH = "/v1/nodes/enroll"
#: An enrolment's body: a token, a name, a region and a few versions.
ANONYMOUS_BODY_BYTES = 4096
#: The `rate_limits` entry (per client address) for invalid keys and enrolment tokens.
FAILED_AUTH = "failed_auth"
#: How long a checked key is trusted without asking the database again: a revocation takes
#: effect within this, and a busy node costs one lookup per interval, not one per request.
KEY_CACHE_S = 2.0


class KeyAuthenticator:
    def __init__(self, fleet: FleetService) -> None:
        self.fleet = fleet
        self.buckets = TokenBuckets(fleet.spec.rate_limits)
        self._checked: dict[str, tuple[Caller, float]] = {}

    async def identify(self, key: str | None, address: str = "") -> Caller:
        """Who presents `key`; `Unauthorized` if no one. An address that keeps presenting
        invalid keys gets `RateLimited` before its next one is looked up (`failed_auth`)."""
        digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
        cached = self._checked.get(digest)
        if cached and time.monotonic() - cached[1] < KEY_CACHE_S:
            return cached[0]
        if key:
            self.may_try(address)
        try:
            caller = await asyncio.to_thread(self.fleet.authenticate, key)
        except Unauthorized:
            if key:  # a missing key costs no lookup
                self.failed(address)
            raise
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[digest] = (caller, time.monotonic())
        return caller

    def may_try(self, address: str) -> None:
        """`RateLimited` if `address` presented too many invalid keys or enrolment tokens."""
        _spend(self.buckets.waiting(address, FAILED_AUTH), "invalid keys from your address")

    def failed(self, address: str) -> None:
        """`address` presented an invalid enrolment token."""
        self.buckets.take(address, FAILED_AUTH)

    def counting_failures(self, send: Send, address: str) -> Send:
        """`send`, counting a 401 reply (a wrong token or key in the body) against `address`."""

        async def watching(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.failed(address)
            await send(message)

        return watching

    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller:
        caller: Caller | None = getattr(request.state, "caller", None)
        if caller is None:  # not through `AuthenticateFirst` (an app without it)
            caller = await self.identify(bearer_key(request.headers.get("authorization", "")))
        if caller.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Forbidden(f"this route is for {allowed} keys; this is a {caller.role} key")
        # A request is charged once, however many `allow` checks it passes (a console router
        # admits readers, and its posts admit operators only).
        if not getattr(request.state, "charged", False):
            wait = self.buckets.take(caller.key_id or "", caller.role)
            _spend(wait, f"requests for this {caller.role} key")
            request.state.charged = True
        request.state.caller = caller
        return caller


def bearer_key(header: str) -> str | None:
    scheme, _, presented = header.partition(" ")
    return presented.strip() if scheme.lower() == "bearer" else None


def _spend(wait: float | None, what: str) -> None:
    if wait is not None:
        raise RateLimited(f"too many {what}; retry in {wait:.1f} s", retry_after=wait)


class AuthenticateFirst:
    """Checks the caller's key before anything reads the request's body: an anonymous caller
    cannot make the server parse a body (up to 32 MiB), nor learn from a 422 what a route
    expects. Enrolment, the one route a caller without a key may use, is limited per client
    address and takes a small body; `/healthz` and `/readyz` take none."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, console: ConsoleSessions | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.console = ConsoleGate(app, console, authenticator) if console else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if not isinstance(self.authenticator, KeyAuthenticator):
            await self.app(scope, receive, send)  # another authenticator checks per route
            return
        address = (scope.get("client") or ("",))[0]
        if self.console is not None and is_console(path):
            await self.console(scope, receive, send, address)  # a session cookie, not a key
            return
        try:
            if path == ENROL_PATH:
                self.authenticator.may_try(address)
                await self._enrol(scope, receive, send, address)
                return
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            key = bearer_key(header.decode("latin-1"))
            caller = await self.authenticator.identify(key, address)
        except BigEvyError as error:
            await error_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _enrol(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        """Enrolment, with a small body; an invalid token counts against the address."""
        assert isinstance(self.authenticator, KeyAuthenticator)
        counted = self.authenticator.counting_failures(send, address)
        await limited(self.app, ANONYMOUS_BODY_BYTES)(scope, receive, counted)


def allow(roles: frozenset[Role]) -> Any:
    """A route dependency admitting callers with one of `roles`."""

    async def check(request: Request) -> Caller:
        return await request.app.state.services.authenticator.authenticate(request, roles)

    check.roles = roles  # type: ignore[attr-defined]  # read by the access tests
    return Depends(check)


def acting_as(caller: Caller, node_id: str) -> None:
    """A node key acts only as its own node (operators and admins may act for any)."""
    if caller.role == Role.node and caller.node_id != node_id:
        raise Forbidden(f"this key belongs to node {caller.node_id!r}, not {node_id!r}")


def caller_of(request: Request) -> Caller:
    """Who the route's `allow(...)` admitted."""
    return request.state.caller
