"""What can go wrong talking to bigEVY, as a lilEVY node sees it.

One exception per way the node must react: fix the request (`InvalidRequest`), fix its key
(`AuthError`), give up on this request (other 4xx), or try again later (`RateLimited`,
`Unavailable`, `ServerError`). Each carries the server's error JSON
(`{"error": {"message", "type", "param", "code"}}`) so a log line says exactly what bigEVY said.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx


class EdgeError(Exception):
    """Base: a refused or failed call to bigEVY."""

    #: Worth trying the same request again later (the request itself is fine).
    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.type = type
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f"{self.status} " if self.status is not None else ""
        code = f" ({self.code})" if self.code else ""
        return f"{status}{self.message}{code}"


class InvalidRequest(EdgeError):
    """400 / 422: the body is wrong; sending it again will not help."""


class AuthError(EdgeError):
    """401: no key, a wrong, expired or revoked key, or a bad enrolment token."""


class Forbidden(EdgeError):
    """403: the key may not do this (e.g. a node acting as another node)."""


class NotFound(EdgeError):
    """404."""


class Conflict(EdgeError):
    """409: e.g. an enrolment token already used, or a revoked node."""


class InFlight(Conflict):
    """409 `idempotency_key_in_use`: the same request is still being answered; ask again
    later and get that answer."""

    transient = True


class PayloadTooLarge(EdgeError):
    """413: the body is over the node routes' limit."""


class RateLimited(EdgeError):
    """429: too many requests for this key; `retry_after` says when to come back."""

    transient = True


class Unavailable(EdgeError):
    """503 (and 502/504), connection errors and timeouts: the uplink or bigEVY is down."""

    transient = True


class ServerError(EdgeError):
    """Another 5xx: bigEVY failed on this request. Kept and retried later, never dropped."""

    transient = True


_BY_STATUS: dict[int, type[EdgeError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


#: Codes that call for another reaction than their status's.
_BY_CODE: dict[str, type[EdgeError]] = {"idempotency_key_in_use": InFlight}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(response: httpx.Response) -> EdgeError:
    """The exception for a non-2xx reply, with the server's message, code and param."""
    status = response.status_code
    detail: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            detail = body["error"]
    except ValueError:
        pass
    message = str(detail.get("message") or response.text.strip() or response.reason_phrase)
    if detail.get("code") in _BY_CODE:
        cls = _BY_CODE[detail["code"]]
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = EdgeError
    return cls(
        message,
        status=status,
        code=detail.get("code"),
        param=detail.get("param"),
        type=detail.get("type"),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def error_from_exception(exc: httpx.TransportError) -> Unavailable:
    """A transport failure (refused, reset, timed out): the uplink or bigEVY is down.

    `code` is `timeout` or `connection_error`, so counts of failures read plainly."""
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Unavailable(f"bigEVY is unreachable ({detail})", code=code)
