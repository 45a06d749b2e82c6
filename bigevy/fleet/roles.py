"""Who a caller is: the four roles a key can carry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"  # everything, including keys and enrolment
    operator = "operator"  # runs the knowledge base and the fleet
    reader = "reader"  # dashboards, status, search
    node = "node"  # one lilEVY node, acting only as itself


ANY_ROLE = frozenset(Role)
OPERATORS = frozenset({Role.admin, Role.operator})
ADMINS = frozenset({Role.admin})
STATUS_READERS = OPERATORS | {Role.reader}
ESCALATORS = OPERATORS | {Role.node}  # who may send lilEVY escalations
NODE_OR_ADMIN = ADMINS | {Role.node}
NODES = frozenset({Role.node})  # a node acting as itself: edge sync


@dataclass(frozen=True)
class Caller:
    role: Role
    key_id: str | None = None
    node_id: str | None = None  # set for a node key: the one node it may act as
