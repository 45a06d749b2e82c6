"""A local HTTP server replaying recorded responses: the stand-in for public web APIs
(weather services, news feeds) that tests must never call."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parents[1] / "data" / "connectors"


class Replay:
    """Path -> (status, content type, body, delay); tests swap responses between rounds."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, float]] = {}
        self.extra_headers: dict[str, dict[str, str]] = {}
        self.hits: dict[str, int] = {}
        self.received: dict[str, dict[str, str]] = {}  # the last request's headers, by path
        self.base_url = ""

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/json",
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, content_type, data, delay)
        self.extra_headers[path] = headers or {}
        return self.base_url + path

    def file(self, path: str, name: str, content_type: str = "application/json") -> str:
        return self.serve(path, (DATA / name).read_bytes(), content_type=content_type)


@contextmanager
def replay_server() -> Iterator[Replay]:
    replay = Replay()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            replay.hits[self.path] = replay.hits.get(self.path, 0) + 1
            replay.received[self.path] = {k.lower(): v for k, v in self.headers.items()}
            status, content_type, body, delay = replay.routes.get(
                self.path, (404, "text/plain", b"not found", 0.0)
            )
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in replay.extra_headers.get(self.path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    replay.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        httpd.shutdown()
        httpd.server_close()
