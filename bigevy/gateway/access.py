"""Who may call what. Every route declares its roles with `allow(...)`; the app's
authenticator says who the caller is.

`KeyAuthenticator` checks API keys (`Authorization: Bearer <key>`, as OpenAI clients send
them) against the fleet database. Only `/healthz` and `/readyz` go without.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Protocol

from fastapi import Depends, Request

from bigevy.errors import Forbidden, RateLimited
from bigevy.fleet.roles import ADMINS, ANY_ROLE, OPERATORS, Caller, Role
from bigevy.fleet.service import FleetService
from bigevy.gateway.ratelimit import TokenBuckets

__all__ = ["ADMINS", "ANY_ROLE", "OPERATORS", "Authenticator", "Caller", "Role", "allow"]


class Authenticator(Protocol):
    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller: ...


#: How long a checked key is trusted without asking the database again: a revocation takes
#: effect within this, and a busy node costs one lookup per interval, not one per request.
KEY_CACHE_S = 2.0


class KeyAuthenticator:
    def __init__(self, fleet: FleetService) -> None:
        self.fleet = fleet
        self.buckets = TokenBuckets(fleet.spec.rate_limits)
        self._checked: dict[str, tuple[Caller, float]] = {}

    async def _caller(self, key: str | None) -> Caller:
        digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
        cached = self._checked.get(digest)
        if cached and time.monotonic() - cached[1] < KEY_CACHE_S:
            return cached[0]
        caller = await asyncio.to_thread(self.fleet.authenticate, key)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[digest] = (caller, time.monotonic())
        return caller

    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        key = presented.strip() if scheme.lower() == "bearer" else None
        caller = await self._caller(key)
        if caller.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Forbidden(f"this route is for {allowed} keys; this is a {caller.role} key")
        wait = self.buckets.take(caller.key_id or "", caller.role)
        if wait is not None:
            raise RateLimited(
                f"too many requests for this {caller.role} key; retry in {wait:.1f} s",
                retry_after=wait,
            )
        request.state.caller = caller
        return caller


def allow(roles: frozenset[Role]) -> Any:
    """A route dependency admitting callers with one of `roles`."""

    async def check(request: Request) -> Caller:
        return await request.app.state.authenticator.authenticate(request, roles)

    check.roles = roles  # type: ignore[attr-defined]  # read by the access tests
    return Depends(check)


def acting_as(caller: Caller, node_id: str) -> None:
    """A node key acts only as its own node (operators and admins may act for any)."""
    if caller.role == Role.node and caller.node_id != node_id:
        raise Forbidden(f"this key belongs to node {caller.node_id!r}, not {node_id!r}")
