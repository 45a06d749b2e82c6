"""Request bodies over a size limit are refused with 413 before they are read into memory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from bigevy.errors import PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes nodes call: their bodies are small, so their limit is too.
NODE_ROUTES = (
    "/v1/nodes",
    "/v1/evy/query",
    "/llm/generate",
    "/search",
    "/v1/sync/contributions",
    "/sync/knowledge",
)

#: Routes that take a file streamed to storage (never held in memory): their own limit.
UPLOAD_ROUTES = ("/v1/artifacts",)


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_node_bytes: int,
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_node_bytes = max_node_bytes
        self.max_upload_bytes = max_upload_bytes or max_bytes

    def limit(self, path: str) -> int:
        if path.startswith(NODE_ROUTES):
            return self.max_node_bytes
        if path.startswith(UPLOAD_ROUTES):
            return self.max_upload_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limit(path)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        seen = 0
        refused = False

        async def counting_receive() -> dict[str, Any]:
            # A body without a Content-Length (chunked) is counted as it arrives. Over the
            # limit, the 413 is sent here, and the app is told the client went: an exception
            # raised into it would come out as its own 400.
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:  # after the 413, nothing the app says goes out
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


def limited(app: ASGIApp, max_bytes: int) -> BodyLimit:
    """`app` with one body limit on every route."""
    return BodyLimit(app, max_bytes, max_bytes)


async def _refuse(send: Send, limit: int) -> None:
    error = PayloadTooLarge(f"request body over the {limit}-byte limit of this route")
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
