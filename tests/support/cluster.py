"""A real Ray + Serve for a test module, and what tests call it with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from bigevy.config import Settings
from bigevy.ops import cluster
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "smollm2-135m-instruct"

#: The `bigevy` command of this environment.
BIGEVY = str(Path(sys.executable).parent / "bigevy")


#: Ports Ray takes by default whatever it is given (the dashboard agent's HTTP port): a port
#: chosen for another of its components must not be one of them, or `ray.init` refuses.
RAY_FIXED_PORTS = frozenset({52365})


def free_port(avoid: frozenset[int] = frozenset()) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def is_ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class Api:
    """httpx's request functions with an API key: `API.post(url, json=...)`.

    `ServeCluster.deploy` makes an admin key for the app it deploys and sets it here.
    """

    def __init__(self) -> None:
        self.key = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


API = Api()


def new_key(settings: Settings, role: str = "admin", node_id: str | None = None) -> str:
    """A fresh key in the metadata database of `settings` (migrated first)."""
    from bigevy.fleet.roles import Role
    from bigevy.fleet.service import open_fleet

    fleet = open_fleet(settings)
    try:
        return fleet.create_key(Role(role), f"test {role}", node_id=node_id).key
    finally:
        fleet.engine.dispose()


class ServeCluster:
    """One Ray + Serve for a test module; `deploy` (re)deploys the bigEVY app on it."""

    def __init__(self, dashboard: bool = False) -> None:
        """`dashboard`: Ray's dashboard too, which writes the Prometheus discovery file."""
        import ray
        from ray import serve

        for attempt in range(2):  # the very first start on a fresh machine can fail once
            try:
                # address="local": a fresh Ray of our own, never a `ray start` cluster (bigevy up)
                context = ray.init(
                    address="local",
                    num_cpus=4,
                    include_dashboard=dashboard,
                    dashboard_host="127.0.0.1",
                    dashboard_port=free_port(avoid=RAY_FIXED_PORTS),
                    log_to_driver=False,
                )
                # A port chosen once Ray holds its own (the dashboard's agents take several).
                self.port = free_port()
                serve.start(http_options={"host": "127.0.0.1", "port": self.port})
                break
            except Exception:
                # Only a Ray of our own: `serve.shutdown()` without one connects to whatever
                # cluster /tmp/ray names (another test's, long gone), and waits on it.
                if ray.is_initialized():
                    serve.shutdown()
                    ray.shutdown()
                if attempt:
                    raise
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.session_dir = Path(context.address_info["session_dir"])

    def deploy(self, settings: Settings, *, wait_ready: bool = True) -> str:
        """Deploy and return the base URL; `API` gets an admin key of this app's database."""
        from ray import serve

        from deployments.app import build_app

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        API.key = new_key(settings)
        target = serve.RunTarget(build_app(settings), name=settings.app_name, route_prefix="/")
        serve.run_many([target], wait_for_applications_running=False)
        if wait_ready:
            # As `bigevy up` does: a redeploy's old replicas still answer /readyz, and a search
            # right after one got "the knowledge base is still loading".
            assert cluster.wait_rolled_out(settings, 120)[0] == "RUNNING"
            wait_for(lambda: is_ready(self.base_url), 120, "bigEVY /readyz")
            # A redeploy rolls the gateway over: until the new one (with this app's database)
            # answers, the old one refuses the new key.
            wait_for(self._takes_the_new_key, 120, "the new gateway")
        return self.base_url

    def _takes_the_new_key(self) -> bool:
        for _ in range(3):
            try:
                if API.get(f"{self.base_url}/v1/models", timeout=10).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def close(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def enroll(base_url: str, name: str = "lil-1", **extra: Any) -> dict[str, Any]:
    """A node enrolled as a lilEVY would: a token from the admin, then the token alone."""
    token = API.post(f"{base_url}/v1/enrollment-tokens", json={}).json()["token"]
    reply = httpx.post(
        f"{base_url}/v1/nodes/enroll", json={"token": token, "name": name, **extra}, timeout=30
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def load_starter_pack(base_url: str) -> None:
    """The pack `bigevy up` loads, through `bigevy ingest` (a second load changes nothing)."""
    from bigevy.knowledge.ingest import STARTER_KNOWLEDGE

    loaded = subprocess.run(
        [BIGEVY, "ingest", str(STARTER_KNOWLEDGE), "--url", base_url],
        env={**os.environ, "BIGEVY_API_KEY": API.key},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
