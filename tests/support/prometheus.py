"""A real Prometheus (Debian's `prometheus` package) for a test module, scraping a Ray cluster
through the discovery file Ray writes, as an operator's Prometheus would."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import ServeCluster, free_port
from tests.support.waiting import wait_for


@pytest.fixture(scope="module", name="serve_cluster")
def serve_cluster_with_dashboard() -> Iterator[ServeCluster]:
    """The module's Ray + Serve, with Ray's dashboard: it writes the discovery file."""
    cluster = ServeCluster(dashboard=True)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def prometheus(
    serve_cluster: ServeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A Prometheus scraping the module's Ray cluster."""
    discovery = serve_cluster.session_dir / "prom_metrics_service_discovery.json"
    server = Prometheus(discovery, tmp_path_factory.mktemp("prometheus"))
    yield server
    server.close()


def find_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError(
            "the metrics tests need Prometheus: apt-get install prometheus (.ci/run does)"
        )
    return found


class Prometheus:
    def __init__(self, discovery_file: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "ray",
                    "file_sd_configs": [{"files": [str(discovery_file)], "refresh_interval": "1s"}],
                }
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                find_prometheus(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, "Prometheus to be ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now."""
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def value(self, promql: str) -> float:
        """The single value `promql` evaluates to (0 when it has none)."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    def targets_up(self) -> int:
        return int(self.value('sum(up{job="ray"})'))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page; KeyError when it is not there."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    raise KeyError(f"{name}{labels}")
