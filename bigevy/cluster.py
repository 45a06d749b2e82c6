"""Getting bigEVY onto Ray: start or join a cluster, deploy the Serve app, tear it down.

Used by the CLI. A local cluster is started with `ray start --head` so it outlives the
`bigevy up` process; Ray's token authentication stays on (the default), and every Ray
client we start sets `RAY_AUTH_MODE=token` to present the token Ray wrote under `~/.ray/`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from bigevy.config import Settings


def ray_env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def _ray_cli() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if not found:
        raise RuntimeError("the `ray` command is not installed")
    return found


def local_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.ray_port}"


def local_ray_running(settings: Settings) -> bool:
    """Is the local head's GCS listening? (`ray status` would retry for most of a minute.)"""
    try:
        with socket.create_connection(("127.0.0.1", settings.ray_port), timeout=1):
            return True
    except OSError:
        return False


def start_local_ray(settings: Settings) -> None:
    """A single-node Ray head on loopback, unless one is already up."""
    if local_ray_running(settings):
        return
    command = [
        _ray_cli(),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(settings.ray_port),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(settings.ray_dashboard_port),
        "--disable-usage-stats",
        "--num-cpus",
        str(settings.local_num_cpus),
    ]
    result = subprocess.run(command, env=ray_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`ray start --head` failed:\n{result.stderr[-2000:]}")


def stop_local_ray() -> None:
    """Stops the Ray processes of this machine's local head (what `bigevy up` started)."""
    subprocess.run([_ray_cli(), "stop"], env=ray_env(), check=False, capture_output=True)


def connect(settings: Settings) -> None:
    """Join the configured cluster (or the local one) as a driver, quietly."""
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"})
    import ray

    if not ray.is_initialized():
        ray.init(
            address=settings.ray_address or local_address(settings),
            namespace="serve",
            log_to_driver=False,
            logging_level="ERROR",
        )


def deploy(settings: Settings) -> None:
    """Deploy (or update in place, rolling) the bigEVY app.

    Returns once the gateway is created; models may still be loading (see `/readyz`).
    """
    from ray import serve

    from deployments.app import build_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    target = serve.RunTarget(build_app(settings), name=settings.app_name, route_prefix="/")
    serve.run_many([target], wait_for_applications_running=False)


def undeploy(settings: Settings) -> None:
    from ray import serve

    serve.delete(settings.app_name)
