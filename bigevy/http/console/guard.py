"""Who is at the console: a session cookie, checked before any body is read.

`AuthenticateFirst` hands every `/console` request here. Static files and the sign-in page need
no session; the sign-in post is anonymous, so it takes a small body and counts a wrong key
against the address, as enrolment does. Every other page needs a live session: a browser
without one is sent to sign in. Each console response carries the security headers, set here
once, and a post from another origin is refused before anything runs.
"""

from __future__ import annotations

import asyncio
from hmac import compare_digest
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Request

from bigevy.errors import BigEvyError, Forbidden, Unauthorized
from bigevy.fleet.console import ConsoleSessions, csrf_token
from bigevy.http.bodylimit import ASGIApp, Receive, Scope, Send, limited
from bigevy.http.console.pages import PREFIX, is_console
from bigevy.http.errors import error_page_response

if TYPE_CHECKING:
    from bigevy.http.access import KeyAuthenticator

__all__ = ["COOKIE", "LOGIN", "PREFIX", "STATIC", "ConsoleGate", "check_csrf", "is_console"]

STATIC = "/console/static/"
LOGIN = "/console/login"
COOKIE = "bigevy_console"
#: A sign-in form's body: a key and where to go next.
LOGIN_BODY_BYTES = 4096
#: htmx's scripts and the console's own are served from here, never inline; pages are framed
#: by no one; forms post only here.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def session_cookie(scope: Scope) -> str | None:
    raw = dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1")
    morsel = SimpleCookie(raw).get(COOKIE) if raw else None
    return morsel.value if morsel else None


def _same_origin(scope: Scope) -> bool:
    """A browser names the page's origin on every post; another site's form names its own."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not a browser's cross-site post (those always carry Origin)
    host = headers.get(b"host", b"").decode("latin-1")
    scheme = scope.get("scheme", "http")
    return origin.decode("latin-1") == f"{scheme}://{host}"


class ConsoleGate:
    def __init__(
        self, app: ASGIApp, sessions: ConsoleSessions, authenticator: KeyAuthenticator
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.authenticator = authenticator  # its buckets hold back failed sign-ins

    async def __call__(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        send = _with_security_headers(send, cached=scope["path"].startswith(STATIC))
        path, method = scope["path"], scope.get("method", "GET")
        try:
            if method in UNSAFE_METHODS and not _same_origin(scope):
                raise Forbidden("a console form was posted from another site", code="cross_site")
            if path.startswith(STATIC) or (path == LOGIN and method == "GET"):
                await self.app(scope, receive, send)
            elif path == LOGIN:
                self.authenticator.may_try(address)
                await self._sign_in(scope, receive, send, address)
            else:
                await self._signed_in(scope, receive, send)
        except BigEvyError as error:
            await error_page_response(error)(scope, receive, send)

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        counted = self.authenticator.counting_failures(send, address)
        await limited(self.app, LOGIN_BODY_BYTES)(scope, receive, counted)

    async def _signed_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        cookie = session_cookie(scope)
        try:
            caller = await asyncio.to_thread(self.sessions.caller, cookie)
        except Unauthorized:
            if scope.get("method") != "GET":
                raise
            await _to_sign_in(scope, send)
            return
        state = scope.setdefault("state", {})
        state["caller"], state["csrf"] = caller, csrf_token(cookie or "")
        await self.app(scope, receive, send)


async def _to_sign_in(scope: Scope, send: Send) -> None:
    """A page asked without a session: sign in, then come back to it (htmx follows
    `HX-Redirect` for the whole page, not the fragment it asked for)."""
    query = scope.get("query_string", b"").decode("latin-1")
    back = scope["path"] + (f"?{query}" if query else "")
    target = f"{LOGIN}?next={quote(back, safe='')}".encode()
    headers = dict(scope.get("headers") or [])
    status = 200 if b"hx-request" in headers else 303
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"location", target), (b"hx-redirect", target)],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _with_security_headers(send: Send, cached: bool) -> Send:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += SECURITY_HEADERS
            if not cached:  # pages show who may do what: never from a shared cache
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def check_csrf(request: Request) -> None:
    """A route dependency: a post carries the session's CSRF token (form field `csrf_token`, or
    `X-CSRF-Token` from htmx), or is refused."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = getattr(request.state, "csrf", None)
    presented = request.headers.get("x-csrf-token")
    if presented is None and expected:
        presented = (await request.form()).get("csrf_token")
    if not expected or not isinstance(presented, str) or not compare_digest(presented, expected):
        raise Forbidden(
            "this form is out of date or not from the console: reload the page", code="csrf"
        )
