"""The CLI's one HTTP client: bigEVY's base URL, the operator's key, TLS verification, and
bigEVY's error shape (`{"error": {"message", "type", "param", "code"}}`) as one exception."""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from typer.core import TyperGroup

from bigevy.cli.output import console
from bigevy.config import Settings
from bigevy.errors import BigEvyError

UrlOption = Annotated[
    str | None, typer.Option("--url", help="bigEVY base URL (default from settings).")
]


class ApiError(Exception):
    """bigEVY replied with a status outside 2xx."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No reply at all: refused, timed out, or TLS failed."""

    def __init__(self, url: str, cause: httpx.HTTPError) -> None:
        super().__init__(str(cause))
        self.url = url


class ReportingGroup(TyperGroup):
    """The root command group: a client error (or a refusal by a command that works on this
    host) ends any command as one red line and exit 1, so commands handle only the replies
    they treat differently."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            console.print(f"[red]{exc.status}[/red] {exc.message}")
            raise typer.Exit(1) from None
        except Unreachable as exc:
            console.print(f"[red]bigEVY is not reachable at {exc.url}[/red]: {exc}")
            raise typer.Exit(1) from None
        except BigEvyError as exc:  # a command that works on this host refused
            console.print(f"[red]{exc.status_code}[/red] {exc.message}", highlight=False)
            raise typer.Exit(1) from None


def error_message(reply: httpx.Response) -> str:
    """bigEVY's error message; the raw body where a proxy or a crash sent something else."""
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text.strip() or reply.reason_phrase


@functools.cache
def _tls_context(certificate: Path | None) -> ssl.SSLContext:
    """The system's CAs, and bigEVY's own certificate where it has one (`tls_certfile`): a
    self-signed one is then trusted by the CLI on the server's host."""
    context = ssl.create_default_context()
    if certificate is not None and certificate.exists():
        context.load_verify_locations(cafile=str(certificate))
    return context


class Client:
    """bigEVY at `url` (default: the settings' base URL), as the operator."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.base_url = (url or self.settings.base_url).rstrip("/")

    @property
    def api_key(self) -> str | None:
        """BIGEVY_API_KEY, else the admin key `bigevy up` left in the data dir. Read at each
        call: `up` writes the file after the client is made."""
        if key := os.environ.get("BIGEVY_API_KEY"):
            return key.strip()
        path = self.settings.admin_key_file
        return path.read_text().strip() if path.exists() else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """The reply's JSON (an object, or a list where the route returns one); `ApiError`
        on a status outside 2xx. `kw` goes to httpx (json, params, timeout)."""
        reply = self._send(method, path, **kw)
        if not reply.is_success:
            raise ApiError(reply.status_code, error_message(reply))
        return reply.json()

    def readiness(self, timeout: float = 5) -> tuple[bool, dict | None]:
        """`/readyz`: whether bigEVY serves, and its body (each model's state; None when it is
        not JSON). A 503 is an answer here, not an error."""
        reply = self._send("GET", "/readyz", timeout=timeout)
        try:
            body = reply.json()
        except ValueError:
            body = None
        return reply.status_code == 200, body

    def stream(self, path: str, body: dict, read_timeout: float = 300) -> Iterator[dict]:
        """POST `body` and yield each server-sent event's JSON until `[DONE]`."""
        url = self.base_url + path
        try:
            with httpx.stream(
                "POST",
                url,
                json=body,
                headers=self._headers(),
                timeout=httpx.Timeout(10, read=read_timeout),
                verify=self._verify(),
            ) as reply:
                if not reply.is_success:
                    reply.read()
                    raise ApiError(reply.status_code, error_message(reply))
                for line in reply.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        yield json.loads(line[6:])
        except httpx.HTTPError as exc:
            raise Unreachable(url, exc) from None

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        url = self.base_url + path
        try:
            headers = {**self._headers(), **kw.pop("headers", {})}
            return httpx.request(method, url, headers=headers, verify=self._verify(), **kw)
        except httpx.HTTPError as exc:
            raise Unreachable(url, exc) from None

    def _headers(self) -> dict[str, str]:
        key = self.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _verify(self) -> ssl.SSLContext:
        return _tls_context(self.settings.tls_certfile)
