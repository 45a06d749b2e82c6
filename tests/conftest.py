"""Shared fixtures: a real Ray + Serve per test module, the real packaged models.

Every Ray the tests start in-process, and every `bigevy` command they run, uses one fresh
token of the run's own: nothing is read from or left in ~/.ray. It is set here, before any
test module imports Ray, which reads its auth settings from the environment on import.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigevy.ops import cluster, ray_auth

_TOKEN_DIR = tempfile.TemporaryDirectory(prefix="bigevy-tests-")
TOKEN = ray_auth.read_token(ray_auth.ensure_token_file(Path(_TOKEN_DIR.name) / "ray_auth_token"))
assert TOKEN is not None
os.environ.update({**cluster.RAY_SETTINGS, **TOKEN.env})

from tests.support.cluster import ServeCluster  # noqa: E402  (after the token is set)


@pytest.fixture(scope="module")
def serve_cluster() -> Iterator[ServeCluster]:
    cluster = ServeCluster()
    yield cluster
    cluster.close()
