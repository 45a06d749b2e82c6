"""Secrets in a backup (the signing key, the first admin key), sealed with a passphrase.

scrypt turns the passphrase into a key (its cost makes guessing slow), AES-256-GCM seals each
secret with the backup's id as associated data: a sealed file moved into another backup, or a
wrong passphrase, fails to open instead of giving a wrong key.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bigevy.errors import Unauthorized, ValidationFailed

PASSPHRASE_ENV = "BIGEVY_BACKUP_PASSPHRASE"
#: scrypt's cost, OWASP's recommendation (2**17, r=8): ~0.3 s and 128 MiB per backup here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1


def passphrase(value: str | None = None) -> str:
    """The passphrase given, or the one in the environment; refused if there is none."""
    found = value or os.environ.get(PASSPHRASE_ENV, "")
    if len(found) < 12:
        raise ValidationFailed(
            f"set {PASSPHRASE_ENV} to a passphrase of 12 characters or more: it seals the "
            "signing key in every backup, and only it opens them again",
            param=PASSPHRASE_ENV,
        )
    return found


def _key(passphrase: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase.encode())


def seal(secrets: dict[str, bytes], passphrase: str, backup_id: str) -> dict[str, object]:
    """`secrets` encrypted, with what opening them needs (never the passphrase)."""
    salt = os.urandom(16)
    aead = AESGCM(_key(passphrase, salt))
    sealed = {}
    for name, value in secrets.items():
        nonce = os.urandom(12)
        box = aead.encrypt(nonce, value, f"{backup_id}/{name}".encode())
        sealed[name] = base64.b64encode(nonce + box).decode()
    return {
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
        "salt": base64.b64encode(salt).decode(),
        "cipher": "AES-256-GCM",
        "secrets": sealed,
    }


def unseal(sealed: dict, passphrase: str, backup_id: str) -> dict[str, bytes]:
    kdf = sealed["kdf"]
    derived = Scrypt(
        salt=base64.b64decode(sealed["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(passphrase.encode())
    aead = AESGCM(derived)
    opened = {}
    for name, value in sealed["secrets"].items():
        raw = base64.b64decode(value)
        try:
            opened[name] = aead.decrypt(raw[:12], raw[12:], f"{backup_id}/{name}".encode())
        except InvalidTag:
            raise Unauthorized(
                f"the passphrase does not open backup {backup_id}'s {name}: "
                f"a wrong {PASSPHRASE_ENV}, or a file from another backup",
                code="wrong_passphrase",
            ) from None
    return opened
