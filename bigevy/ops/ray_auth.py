"""Ray's token authentication for the clusters bigEVY starts and joins.

Token auth stays on (`RAY_AUTH_MODE=token`): whoever reaches a Ray's GCS or dashboard without
the token cannot submit work next to the signing key and the database. Ray finds its token in
`RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH` names, else `~/.ray/auth_token`, and a
`ray start` in token mode with none of them fails. So bigEVY brings its own: a file in the data
dir (mode 0600, made on first use as Ray's own generator makes one: 256 random bits in hex),
named by `RAY_AUTH_TOKEN_PATH` to every Ray process and client it starts. Nothing is read from or
written to `~/.ray`, so a fresh home works, and a token left there by another Ray does not leak
into bigEVY's.

A Ray that bigEVY did not start may hold another token. Before joining one, bigEVY asks its GCS
(one gRPC call, a few ms) which of the tokens it may use is accepted: the operator's own
(`RAY_AUTH_TOKEN` / `RAY_AUTH_TOKEN_PATH` in the environment, and then only that one), else
bigEVY's file, then Ray's default file. If none is, it says so and how to fix it, rather than
let `ray.init` retry for 20 s and raise a ConnectionError.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from bigevy.ops.files import write_atomically

#: The environment variables through which an operator hands Ray a token of their own.
OPERATOR_TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class TokenRefused(RuntimeError):
    """The Ray at an address takes none of the tokens bigEVY may use."""


@dataclass(frozen=True)
class Token:
    """One token and where it comes from; `env` makes Ray processes and clients use it."""

    value: str
    source: str  # for messages: a file's path or an environment variable's name
    env: dict[str, str]


def token_file(data_dir: Path) -> Path:
    return data_dir / "ray_auth_token"


def ensure_token_file(path: Path) -> Path:
    """`path`, holding a new random token (mode 0600) unless it holds one already."""
    if not read_token(path):
        write_atomically(path, secrets.token_hex(32).encode(), mode=0o600)
    return path


def read_token(path: Path) -> Token | None:
    """The token a file holds, for Ray processes to read from it; None if none."""
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return Token(value, str(path), {"RAY_AUTH_TOKEN_PATH": str(path)}) if value else None


def operator_token() -> Token | None:
    """The token the operator's environment names, if it names one (Ray's precedence)."""
    if value := os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return Token(value, "RAY_AUTH_TOKEN", {})
    if path := os.environ.get("RAY_AUTH_TOKEN_PATH"):
        token = read_token(Path(path).expanduser())
        if token is None:  # Ray aborts on an unreadable RAY_AUTH_TOKEN_PATH; say it first
            raise TokenRefused(f"RAY_AUTH_TOKEN_PATH names {path}, which holds no token")
        return token
    return None


def own_token(data_dir: Path) -> Token:
    """The token for a Ray bigEVY starts: the operator's, else bigEVY's file (made if new)."""
    return candidates(data_dir)[0]


def candidates(data_dir: Path) -> list[Token]:
    """The tokens bigEVY may present to a Ray it joins, in the order it tries them."""
    if token := operator_token():
        return [token]
    # Ray's default file last: the token of a Ray someone started by hand on this host.
    ours = read_token(ensure_token_file(token_file(data_dir)))
    default = read_token(Path.home() / ".ray" / "auth_token")
    return [t for t in (ours, default) if t is not None]


def accepts(address: str, token: str, timeout: float = 5) -> bool | None:
    """Does the GCS at `address` take `token`? None if it cannot be asked (not up, not Ray).

    A raw gRPC call, not Ray's generated stubs: importing `ray` fixes the driver's auth
    settings before `connect` has chosen them.
    """
    if not re.fullmatch(r"[\w.-]+:\d+", address):  # "auto", "ray://…": not a GCS to ask
        return None
    import grpc

    with grpc.insecure_channel(address) as channel:
        get_cluster_id = channel.unary_unary(
            "/ray.rpc.NodeInfoGcsService/GetClusterId",
            request_serializer=lambda _: b"",  # GetClusterIdRequest has no fields
            response_deserializer=lambda reply: reply,
        )
        try:
            get_cluster_id(None, metadata=[("authorization", f"Bearer {token}")], timeout=timeout)
        except grpc.RpcError as exc:
            return False if exc.code() == grpc.StatusCode.UNAUTHENTICATED else None
    return True


def token_for(address: str, data_dir: Path) -> Token:
    """The token the Ray at `address` accepts, of those bigEVY may use; TokenRefused if none."""
    tried = candidates(data_dir)
    for token in tried:
        # None: nobody to ask, and ray.init will say what is wrong with `address`.
        if accepts(address, token.value) is not False:
            return token
    names = " or ".join(t.source for t in tried)
    raise TokenRefused(
        f"the Ray at {address} uses token authentication and refused the token in {names}: it "
        "was started with another one. Set RAY_AUTH_TOKEN_PATH to the file holding that Ray's "
        "token (or RAY_AUTH_TOKEN to the token itself) and run again, or give bigEVY a Ray of "
        "its own on another port (BIGEVY_RAY_PORT)."
    )
