"""bigEVY's Ed25519 signing key: nodes verify packages and alerts with its public half.

The private key is made once, kept in a 0600 file on the server (a shared secret mount when
replicas run on many hosts), and never sent anywhere; only the public key is served.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Written under a temporary name with 0600, then renamed: never half-written,
            # never readable by others, and two replicas starting at once keep one key.
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            try:
                os.link(tmp, path)  # fails if another replica made one first
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(private)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @property
    def public_key(self) -> str:
        """Base64 of the raw 32-byte public key: what a node pins at enrolment."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()
