"""The operator's CLI end to end: `bigevy up`, `chat`, `status`, `down`, as a newcomer runs them."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bigevy.ops import cluster, ray_auth
from tests.support.cluster import BIGEVY, free_port

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def other_token(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token file of a Ray that is not bigEVY's."""
    return ray_auth.ensure_token_file(tmp_path_factory.mktemp("other") / "token")


@pytest.fixture(scope="module")
def other_ray(other_token: Path) -> Iterator[int]:
    """A Ray head that is not bigEVY's, with a token of its own, as another job on the same
    host would run one."""
    port = free_port()
    ports = ("--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port")
    command = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += [arg for flag in ports for arg in (flag, str(free_port()))]
    command += ["--num-cpus", "4", "--disable-usage-stats"]
    env = cluster.ray_env(ray_auth.read_token(other_token))
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    session = cluster.head_session(port)
    assert session is not None
    yield port
    cluster.end_session(session, port)


class Cli:
    """`bigevy` as a new user runs it: a home of its own (no ~/.ray), no Ray token given."""

    def __init__(self, tmp_path: Path, port: int, ray_port: int, **settings: str) -> None:
        (tmp_path / "home").mkdir(exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ray_auth.OPERATOR_TOKEN_VARS},
            "HOME": str(tmp_path / "home"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # as an activated venv
            **settings,
            "BIGEVY_PORT": str(port),
            "BIGEVY_DATA_DIR": str(tmp_path / "data"),
            "BIGEVY_RAY_PORT": str(ray_port),
            "BIGEVY_RAY_DASHBOARD_PORT": str(free_port()),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.shell(shlex.join([BIGEVY, *args]))

    def shell(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def test_up_chat_status_down(tmp_path: Path, other_ray: int) -> None:
    port = free_port()
    bigevy = Cli(tmp_path, port, free_port())
    other_session = cluster.head_session(other_ray)
    try:
        up = bigevy("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}/v1" in up.stdout
        assert (tmp_path / "data").is_dir()
        assert "starter knowledge: 81 added" in up.stdout
        key_file = tmp_path / "data" / "admin.key"
        key = key_file.read_text().strip()
        assert "first admin key (shown once" in up.stdout and key in up.stdout
        assert key_file.stat().st_mode & 0o777 == 0o600
        # Ray's token is bigEVY's own, beside the key; nothing went to ~/.ray.
        assert (tmp_path / "data" / "ray_auth_token").stat().st_mode & 0o777 == 0o600
        assert not (tmp_path / "home" / ".ray").exists()
        # Idempotent: the same Ray, the same app, nothing added twice. It may roll replicas
        # over; it returns once they serve (the search below once found nothing otherwise).
        again = bigevy("up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "81 unchanged" in again.stdout and "joining" not in again.stdout
        query = {"query": "what to do when a flood is coming", "top_k": 1}
        search = f"http://127.0.0.1:{port}/v1/rag/search"
        assert httpx.post(search, json=query, timeout=60).status_code == 401
        found = httpx.post(
            search, json=query, timeout=60, headers={"Authorization": f"Bearer {key}"}
        )
        assert found.json()["hits"][0]["citation"]["document_id"] == "flood"

        ask = bigevy("ask", "My child has diarrhoea, what should I give?", "--segments", "2")
        assert ask.returncode == 0, ask.stdout + ask.stderr
        assert "SMS" in ask.stdout and "source: Diarrhoea and dehydration" in ask.stdout

        snakes = "Je, ninawezaje kujikinga na nyoka shambani?"  # Swahili: safe from snakes
        swahili = bigevy("ask", snakes, "--language", "sw", "--profile", "sms")
        assert swahili.returncode == 0, swahili.stdout + swahili.stderr
        assert "(sw/snakebite)" in swahili.stdout  # the Swahili translation's own words

        urgent = bigevy("ask", "HELP house on fire kids inside", "--region", "KE")
        assert urgent.returncode == 0, urgent.stdout + urgent.stderr
        assert "EMERGENCY (fire)" in urgent.stdout and "999 (fire)" in urgent.stdout

        chat = bigevy("chat", "How do I make water safe to drink?", "--max-tokens", "24")
        assert chat.returncode == 0, chat.stdout + chat.stderr
        assert len(chat.stdout.split()) >= 3

        status = bigevy("status")
        assert status.returncode == 0 and "ready" in status.stdout
        assert "smollm2-135m-instruct" in status.stdout
        assert "answer cache: " in status.stdout and " misses (" in status.stdout

        # Ray's own tools reach bigEVY's Ray with what `bigevy ray-env` exports (the README's
        # `eval "$(bigevy ray-env)"; serve status`); without it, Ray refuses them.
        refused = bigevy.shell(
            'eval "$(bigevy ray-env)" && unset RAY_AUTH_TOKEN_PATH && serve status'
        )
        assert refused.returncode != 0 and "Authentication" in refused.stdout + refused.stderr
        serve_status = bigevy.shell('eval "$(bigevy ray-env)" && serve status')
        assert serve_status.returncode == 0, serve_status.stdout + serve_status.stderr
        assert "bigevy:" in serve_status.stdout and "RUNNING" in serve_status.stdout

        refused = bigevy("chat", "hi", "--profile", "poetry")
        assert refused.returncode == 1 and "valid profiles" in refused.stdout
    finally:
        down = bigevy("down")
    assert down.returncode == 0 and "bigEVY stopped\n" in down.stdout
    assert (tmp_path / "data" / "lancedb").is_dir()  # the knowledge base lives in the data dir
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    # `down` ended the Ray that `up` started, and only that one (`ray stop` would end both).
    assert cluster.head_session(other_ray) == other_session


def test_up_joins_a_running_ray_and_down_leaves_it_running(
    tmp_path: Path, other_ray: int, other_token: Path
) -> None:
    port = free_port()
    bigevy = Cli(tmp_path, port, other_ray, RAY_AUTH_TOKEN_PATH=str(other_token))
    other_session = cluster.head_session(other_ray)
    try:
        up = bigevy("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"joining the Ray already running at 127.0.0.1:{other_ray}" in up.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        down = bigevy("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"the Ray at 127.0.0.1:{other_ray} keeps running" in down.stdout
    assert cluster.head_session(other_ray) == other_session
    with pytest.raises(httpx.TransportError):  # no app is left on it, so Serve is shut down
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_up_refuses_a_ray_started_with_another_token_in_one_line(
    tmp_path: Path, other_ray: int
) -> None:
    """Without that Ray's token, `up` says what to set, at once (ray.init would retry for 20 s
    and end in a ConnectionError), and leaves that Ray as it was."""
    other_session = cluster.head_session(other_ray)
    up = Cli(tmp_path, free_port(), other_ray)("up")
    assert up.returncode == 1, up.stdout + up.stderr
    assert f"cannot join Ray: the Ray at 127.0.0.1:{other_ray}" in up.stdout
    assert "refused the token" in up.stdout and "RAY_AUTH_TOKEN_PATH" in up.stdout
    assert "Traceback" not in up.stdout + up.stderr
    assert cluster.head_session(other_ray) == other_session


def test_up_says_why_a_deployment_failed(tmp_path: Path, other_ray: int, other_token: Path) -> None:
    """A model file that is not there: `up` stops at once with Serve's reason, not after its
    whole wait with "not ready"."""
    broken = '[{"id": "broken", "source": "/nonexistent/model.gguf"}]'
    bigevy = Cli(
        tmp_path, free_port(), other_ray, BIGEVY_MODELS=broken, RAY_AUTH_TOKEN_PATH=str(other_token)
    )
    try:
        up = bigevy("up", "--wait", "240")
        assert up.returncode == 1, up.stdout + up.stderr
        assert "did not deploy (Serve: DEPLOY_FAILED)" in up.stdout
        assert "model-broken: FileNotFoundError: model not found: /nonexistent/model.gguf" in (
            up.stdout
        )
    finally:
        down = bigevy("down")
    assert down.returncode == 0, down.stdout + down.stderr


def test_up_says_why_ray_did_not_start(tmp_path: Path) -> None:
    """A Ray port inside Ray's own worker port range (10002-19999) ended `up` in a traceback."""
    in_workers_range = next(port for port in range(15000, 19999) if _free(port))
    up = Cli(tmp_path, free_port(), in_workers_range)("up")
    assert up.returncode == 1, up.stdout + up.stderr
    assert "Ray did not start" in up.stdout and "ValueError: Ray component" in up.stdout
    assert "Traceback" not in up.stdout + up.stderr


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
