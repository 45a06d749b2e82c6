"""A one-machine bigEVY for benchmarks: Ray + Serve in this process, the app deployed, ready."""

from __future__ import annotations

import socket
import time

import httpx

from bigevy.config import Settings

#: `Authorization` for the app `start_serve` deployed (an admin key of its database).
HEADERS: dict[str, str] = {}


def start_serve(settings: Settings, num_cpus: int | None = None) -> str:
    """Deploy bigEVY on a fresh local Ray and return its base URL once /readyz says so.

    `num_cpus`: logical CPUs for Ray (default as `bigevy up`: `Settings.local_num_cpus`).
    """
    import ray
    from ray import serve

    from deployments.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from bigevy.fleet.roles import Role
    from bigevy.fleet.service import open_fleet

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fleet = open_fleet(settings)
    HEADERS["Authorization"] = f"Bearer {fleet.create_key(Role.admin, 'benchmark').key}"
    fleet.engine.dispose()
    # address="local": a fresh Ray of our own, never a running `bigevy up` cluster.
    num_cpus = num_cpus or settings.local_num_cpus
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=settings.app_name, route_prefix="/")
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while httpx.get(f"{base_url}/readyz", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("bigEVY did not become ready")
        time.sleep(0.5)
    return base_url
