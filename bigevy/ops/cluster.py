"""Getting bigEVY onto Ray: start or join a cluster, deploy the Serve app, tear it down.

Used by the CLI. A local cluster is started with `ray start --head` so it outlives the
`bigevy up` process. Ray's token authentication stays on, with the token `ray_auth` provides.

`ray stop` would end every Ray on the machine, so `bigevy down` does not use it: `up` records
the session of the head it started (in the data dir), and `down` ends only that session's
processes. A Ray that `up` found already running is joined, and `down` leaves it running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bigevy.config import Settings
from bigevy.ops import ray_auth
from bigevy.ops.files import write_atomically

#: What every Ray process and client bigEVY starts runs with, besides its token.
RAY_SETTINGS = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def ray_env(token: ray_auth.Token) -> dict[str, str]:
    """This process's environment, for a Ray command that should present `token`."""
    return {**os.environ, **RAY_SETTINGS, **token.env}


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


def start_local_ray(settings: Settings) -> bool:
    """A single-node Ray head on loopback, unless one is already up. True if this started it."""
    if local_ray_running(settings):
        return False
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
    env = ray_env(ray_auth.own_token(settings.data_dir))
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`ray start --head` failed: {_reason(result.stderr)}")
    session = head_session(settings.ray_port)
    if session is None:
        raise RuntimeError(f"`ray start --head` left no GCS on port {settings.ray_port}")
    write_atomically(_head_record(settings), f"{session}\n".encode())
    return True


_RAISED = re.compile(r"^[A-Za-z_.]*(Error|Exception):")


def _reason(stderr: str) -> str:
    """The error a failed `ray start` ends with: from its exception line on, not its traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    raised = [i for i, line in enumerate(lines) if _RAISED.match(line)]
    return "\n".join(lines[raised[-1] :] if raised else lines[-3:])


def _head_record(settings: Settings) -> Path:
    return settings.data_dir / "ray_head_session"


def _argument(cmdline: list[str], name: str) -> str | None:
    prefix = f"--{name}="
    return next((arg[len(prefix) :] for arg in cmdline if arg.startswith(prefix)), None)


def head_session(port: int) -> str | None:
    """The session name of the Ray head whose GCS serves `port` on this machine, if any."""
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "gcs_server" and _argument(cmdline, "gcs_server_port") == str(
            port
        ):
            return _argument(cmdline, "session-name")
    return None


def session_processes(session: str, port: int) -> list[psutil.Process]:
    """Every process of one Ray session: those naming it or its GCS, and all they started."""
    roots: list[psutil.Process] = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        names_gcs = any(
            arg.startswith(("--address=", "--gcs-address=")) and arg.endswith(f":{port}")
            for arg in cmdline
        )
        # Ray's programs name their session in a flag (`--session-dir=...`); a `tail -f` of
        # its logs names it too, but is not Ray's to end.
        if names_gcs or any(arg.startswith("--") and session in arg for arg in cmdline):
            roots.append(process)
    found = {p.pid: p for p in roots}
    for root in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.update({child.pid: child for child in root.children(recursive=True)})
    found.pop(os.getpid(), None)
    return list(found.values())


def ours(settings: Settings) -> str | None:
    """The session of the local head if an earlier `bigevy up` started it, else None."""
    record = _head_record(settings)
    session = record.read_text().strip() if record.exists() else None
    return session if session and head_session(settings.ray_port) == session else None


def stop_local_ray(settings: Settings, timeout: float = 15) -> bool:
    """End the local head if `bigevy up` started it (True); any other Ray is left alone."""
    session = ours(settings)
    if session:
        end_session(session, settings.ray_port, timeout)
    _head_record(settings).unlink(missing_ok=True)  # ended, or a record of a head now gone
    return session is not None


def end_session(session: str, port: int, timeout: float = 15) -> None:
    """Stop one Ray session as `ray stop` stops them all: raylet, then the rest, then the GCS.

    In that order each part exits promptly on SIGTERM (ended together, the raylet and the GCS
    wait for each other); what is still alive after a third of `timeout` gets SIGKILL.
    """
    processes = session_processes(session, port)
    order = {"raylet": 0, "gcs_server": 2}
    for stage in range(3):
        group = [p for p in processes if order.get(_name(p), 1) == stage]
        for process in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(group, timeout=timeout / 3)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=2)


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


def connect(settings: Settings) -> None:
    """Join the configured cluster (or the local one) as a driver, quietly.

    ray_auth.TokenRefused if that Ray takes none of the tokens bigEVY may use.
    """
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    address = settings.ray_address or local_address(settings)
    token = ray_auth.token_for(address, settings.data_dir)
    # Before `import ray`: Ray reads its auth settings from the environment on import.
    os.environ.update({**RAY_SETTINGS, **token.env})
    import ray

    ray.init(
        address=address,
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
    serve.start(http_options=settings.http_options())
    target = serve.RunTarget(build_app(settings), name=settings.app_name, route_prefix="/")
    serve.run_many([target], wait_for_applications_running=False)


def app_status(settings: Settings) -> tuple[str, str]:
    """Serve's status of the bigEVY app, and why when it failed: RUNNING once every deployment
    runs its new version (DEPLOYING while a redeploy rolls replicas over, DEPLOY_FAILED if one
    cannot start)."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    app = serve.status().applications.get(settings.app_name)
    if app is None:
        return "NOT_STARTED", ""
    status = ApplicationStatus(app.status).value
    failing = [
        f"{name}: {deployment.message.strip().splitlines()[-1]}"
        for name, deployment in app.deployments.items()
        if deployment.status not in ("HEALTHY", "UPDATING", "UPSCALING", "DOWNSCALING")
        and deployment.message.strip()
    ]
    return status, "; ".join(failing) or app.message


#: Serve application states a rollout ends in.
SETTLED = {"RUNNING", "DEPLOY_FAILED", "UNHEALTHY"}


def wait_rolled_out(settings: Settings, timeout: float) -> tuple[str, str]:
    """`app_status` once the app's rollout has settled (or `timeout` s passed). A redeploy
    replaces replicas while the old ones still answer `/readyz`, so that alone is no sign."""
    deadline = time.monotonic() + timeout
    state, reason = app_status(settings)
    while state not in SETTLED and time.monotonic() < deadline:
        time.sleep(0.5)
        state, reason = app_status(settings)
    return state, reason


def undeploy(settings: Settings) -> None:
    """Delete the bigEVY app; shut Serve down too if no other app is left on it."""
    from ray import serve

    serve.delete(settings.app_name)
    if not serve.status().applications:
        serve.shutdown()
