"""What every integration module starts from: the bigEVY app deployed on the module's Ray +
Serve, with default settings unless the module defines its own `settings`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bigevy.config import Settings
from bigevy.fleet.service import FleetService, open_fleet
from tests.support.cluster import ServeCluster


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def base_url(serve_cluster: ServeCluster, settings: Settings) -> str:
    return serve_cluster.deploy(settings)


@pytest.fixture(scope="module")
def fleet(base_url: str, settings: Settings) -> Iterator[FleetService]:
    """The app's own metadata database: to make keys quickly, and count what it stored."""
    service = open_fleet(settings)
    yield service
    service.engine.dispose()
