"""API keys and enrolment tokens: random, shown once, stored as a hash.

A key reads `bevy_<id>_<secret>`: the id (not secret) finds the row in one indexed lookup,
the 256-bit secret is compared by its SHA-256 in constant time. A slow password hash would add
nothing for secrets this long, and would cost every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "bevy"
TOKEN_PREFIX = "bevyenroll"


@dataclass(frozen=True)
class Secret:
    id: str
    secret: str

    def __str__(self) -> str:
        raise TypeError("use .reveal(prefix): a secret is never formatted by accident")

    def reveal(self, prefix: str) -> str:
        return f"{prefix}_{self.id}_{self.secret}"

    @property
    def hash(self) -> str:
        return hash_secret(self.secret)


def new_secret() -> Secret:
    return Secret(id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(value: str, prefix: str) -> Secret | None:
    """The id and secret of `prefix_<id>_<secret>`, or None when it is not of that form."""
    head, _, rest = value.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if head != prefix or len(key_id) != 16 or not secret:
        return None
    return Secret(id=key_id, secret=secret)


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
