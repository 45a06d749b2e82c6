"""A one-machine bigEVY for benchmarks: Ray + Serve in this process, the app deployed, ready."""

from __future__ import annotations

import socket
import time

import httpx

from bigevy.config import Settings


def start_serve(settings: Settings) -> str:
    """Deploy bigEVY on a fresh local Ray and return its base URL once /readyz says so."""
    import ray
    from ray import serve

    from deployments.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=settings.app_name, route_prefix="/")
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while httpx.get(f"{base_url}/readyz", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("bigEVY did not become ready")
        time.sleep(0.5)
    return base_url
