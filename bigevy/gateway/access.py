"""Who may call what. Every route declares its roles here with `allow(...)`.

Until API keys exist (the fleet issue), `OpenAccess` lets every caller through as an
anonymous admin; replacing the app's `authenticator` is the one change that turns checks on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from fastapi import Depends, Request


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    reader = "reader"
    node = "node"


ANY_ROLE = frozenset(Role)
OPERATORS = frozenset({Role.admin, Role.operator})


@dataclass(frozen=True)
class Caller:
    role: Role
    key_id: str | None = None
    node_id: str | None = None


class Authenticator(Protocol):
    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller: ...


class OpenAccess:
    """No keys yet: everyone is an anonymous admin."""

    async def authenticate(self, request: Request, roles: frozenset[Role]) -> Caller:
        return Caller(role=Role.admin)


def allow(roles: frozenset[Role]) -> Any:
    """A route dependency admitting callers with one of `roles`."""

    async def check(request: Request) -> Caller:
        return await request.app.state.authenticator.authenticate(request, roles)

    check.roles = roles  # type: ignore[attr-defined]  # read by the access tests
    return Depends(check)
