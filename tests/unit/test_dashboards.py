"""bigEVY's Grafana dashboards (bigevy/ops/dashboards.py) and `bigevy dashboards push|write`.

No Ray and no Grafana: every query is evaluated by a real Prometheus (Debian's package), which
answers 400 to one that does not parse, and `push` talks to a local HTTP server replaying
Grafana's documented replies for the calls grafana-client makes:

- folder search, `GET /api/search?query=<title>&type=dash-folder`: Folder/Dashboard Search HTTP
  API (https://grafana.com/docs/grafana/latest/developers/http_api/folder_dashboard_search/);
- `POST /api/folders`: Folder HTTP API, "Create folder"
  (https://grafana.com/docs/grafana/latest/developers/http_api/folder/);
- `POST /api/dashboards/db`: Dashboard HTTP API, "Create / Update dashboard", its success reply
  and its 412 `{"message": ..., "status": "version-mismatch"}`
  (https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/);
- a token Grafana does not know: 401 `{"message": "Unauthorized"}` (Authentication HTTP API,
  https://grafana.com/docs/grafana/latest/developers/http_api/auth/).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from bigevy.cli.dashboards import dashboard_json
from bigevy.ops.dashboards import DASHBOARDS, panel_queries, panels
from tests.support.cluster import free_port
from tests.support.prometheus import Prometheus

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "monitoring" / "grafana"
BIGEVY = Path(sys.executable).parent / "bigevy"
TOKEN = "glsa_bigevy_test_token"
#: Ray Serve's metrics the dashboards read (Ray adds `ray_`, and `_total` to counters), as
#: Ray 2.60 names them in ray/serve/_private (checked below against the installed source).
SERVE_METRICS = {
    "serve_num_http_requests": "counter",
    "serve_num_http_error_requests": "counter",
    "serve_deployment_request_counter": "counter",
    "serve_http_request_latency_ms": "histogram",
    "serve_deployment_processing_latency_ms": "histogram",
    "serve_replica_processing_queries": "gauge",
    "serve_deployment_replica_healthy": "gauge",
    "serve_deployment_queued_queries": "gauge",
}


def exported(name: str, kind: str) -> set[str]:
    """The series names Ray's Prometheus export gives a metric (never a histogram's `_sum`:
    Ray does not always export it)."""
    if kind == "counter":
        return {"ray_" + name + ("" if name.endswith("_total") else "_total")}
    if kind == "histogram":
        return {f"ray_{name}_bucket", f"ray_{name}_count"}
    return {"ray_" + name}


def known_series() -> set[str]:
    """Every series bigEVY (bigevy/metrics.py, read as text: no Ray imported) and the Serve
    metrics above export."""
    source = (ROOT / "bigevy" / "metrics.py").read_text()
    ours = re.findall(r'(Counter|Gauge|Histogram)\(\s*"(\w+)"', source)
    assert len(ours) >= 12, "bigevy/metrics.py defines fewer metrics than the dashboards read"
    names: set[str] = set()
    for kind, name in ours:
        names |= exported(name, kind.lower())
    for name, kind in SERVE_METRICS.items():
        names |= exported(name, kind)
    return names


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_each_dashboard_builds_with_its_uid_and_a_datasource_variable(uid: str) -> None:
    dashboard = DASHBOARDS[uid]()
    assert dashboard["uid"] == uid
    assert dashboard["title"].startswith("bigEVY / ")
    found = list(panels(dashboard))
    assert len(found) >= 4
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(ids)
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["name"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for panel in found:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert [t["refId"] for t in panel["targets"]] == ["A", "B", "C", "D"][
            : len(panel["targets"])
        ]
    # The same code builds the same JSON: the uids, ids and files stay stable.
    assert DASHBOARDS[uid]() == dashboard


def test_queries_read_only_metrics_that_exist() -> None:
    known = known_series()
    for uid, build in DASHBOARDS.items():
        for query in panel_queries(build()):
            assert "$" not in query, query  # every Grafana variable resolved
            assert "{}" not in query, query
            used = set(re.findall(r"\bray_\w+", query))
            assert used, query
            assert used <= known, f"{uid}: unknown {used - known} in {query}"
            # A gauge every gateway replica reports alike: summing it counts each node twice.
            if "ray_bigevy_nodes" in query:
                assert "max by (region, state) (ray_bigevy_nodes)" in query, query


def test_serve_metric_names_are_ray_2_60s() -> None:
    spec = importlib.util.find_spec("ray")  # found, not imported: no Ray started or loaded
    assert spec is not None and spec.submodule_search_locations
    serve = Path(spec.submodule_search_locations[0]) / "serve" / "_private"
    source = "\n".join(p.read_text() for p in serve.glob("*.py"))
    for name in SERVE_METRICS:
        # The HTTP proxy's names are built per protocol: f"serve_num_{protocol_name}_requests".
        spelled = {name, name.replace("http", "{protocol_name}")}
        assert any(f'"{s}"' in source for s in spelled), name


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    discovery = workdir / "targets.json"
    discovery.write_text("[]")  # nothing to scrape: only the queries' syntax is checked here
    server = Prometheus(discovery, workdir)
    yield server
    server.close()


def evaluate(prometheus: Prometheus, query: str) -> httpx.Response:
    return httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)


@pytest.mark.timeout(120)
def test_every_panel_query_is_valid_promql(prometheus: Prometheus) -> None:
    # The check itself: Prometheus refuses a query that does not parse.
    refused = evaluate(prometheus, "sum(rate(ray_bigevy_escalations_total[1m])")
    assert refused.status_code == 400 and refused.json()["errorType"] == "bad_data"
    for uid, build in DASHBOARDS.items():
        for query in panel_queries(build()):
            reply = evaluate(prometheus, query)
            body = reply.json()
            assert reply.status_code == 200, f"{uid}: {body.get('error')}: {query}"
            assert body["status"] == "success", query


def test_committed_files_are_what_the_code_builds() -> None:
    committed = sorted(p.name for p in (GRAFANA_DIR / "dashboards").glob("*.json"))
    assert committed == sorted(f"{uid}.json" for uid in DASHBOARDS)
    for uid, build in DASHBOARDS.items():
        text = (GRAFANA_DIR / "dashboards" / f"{uid}.json").read_text()
        assert text == dashboard_json(build()), (
            f"monitoring/grafana/dashboards/{uid}.json is stale: run "
            "`bigevy dashboards write monitoring/grafana/dashboards`"
        )


def test_write_command_writes_the_committed_files(tmp_path: Path) -> None:
    done = bigevy("dashboards", "write", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout
    for uid in DASHBOARDS:
        written = (tmp_path / "out" / f"{uid}.json").read_text()
        assert written == (GRAFANA_DIR / "dashboards" / f"{uid}.json").read_text()


def test_provisioning_files_point_at_the_dashboards_and_prometheus() -> None:
    provisioning = GRAFANA_DIR / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "bigevy.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file" and provider["options"]["path"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"]
    # Grafana expands ${VAR} but takes no default: grafana.env holds one for every variable.
    env = dict(
        line.split("=", 1)
        for line in (GRAFANA_DIR / "grafana.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    used = {
        *re.findall(r"\$\{(\w+)\}", provider["options"]["path"]),
        *re.findall(r"\$\{(\w+)\}", source["url"]),
    }
    assert used == {"PROMETHEUS_URL", "BIGEVY_GRAFANA_DASHBOARDS"} and used <= env.keys()
    assert env["PROMETHEUS_URL"] == "http://localhost:9090"


# -- push, against a Grafana that replays its documented replies ---------------------------


class FakeGrafana(ThreadingHTTPServer):
    """Grafana's legacy HTTP API, the part `bigevy dashboards push` calls; records every
    request as (method, path, query, Authorization header, JSON body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), GrafanaHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str, dict[str, list[str]], str | None, Any]] = []
        # A folder whose title contains the one pushed to: a search for "bigEVY" returns it.
        self.folders = [{"id": 7, "uid": "old1", "title": "bigEVY archive"}]
        self.versions: dict[str, int] = {}
        self.version_mismatch = False

    def posted(self, path: str) -> list[Any]:
        return [body for method, p, _, _, body in self.requests if (method, p) == ("POST", path)]


class GrafanaHandler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test's output to its own

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization")
        self.server.requests.append((method, parts.path, parse_qs(parts.query), auth, body))
        if auth != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "Unauthorized"})
        route = {
            ("GET", "/api/search"): self._search,
            ("POST", "/api/folders"): self._create_folder,
            ("POST", "/api/dashboards/db"): self._save_dashboard,
        }.get((method, parts.path))
        if route is None:
            return self._reply(404, {"message": "Not found"})
        return route(parse_qs(parts.query), body)

    def _search(self, query: dict[str, list[str]], body: Any) -> None:
        assert query["type"] == ["dash-folder"]
        wanted = query["query"][0].lower()
        hits = [
            {
                "id": f["id"],
                "uid": f["uid"],
                "title": f["title"],
                "uri": f"db/{slug(f['title'])}",
                "url": f"/dashboards/f/{f['uid']}/{slug(f['title'])}",
                "slug": "",
                "type": "dash-folder",
                "tags": [],
                "isStarred": False,
                "sortMeta": 0,
            }
            for f in self.server.folders
            if wanted in f["title"].lower()
        ]
        self._reply(200, hits)

    def _create_folder(self, query: dict[str, list[str]], body: Any) -> None:
        folder = {"id": len(self.server.folders) + 1, "uid": "nErXDvCkzz", "title": body["title"]}
        self.server.folders.append(folder)
        self._reply(
            200,
            {
                **folder,
                "url": f"/dashboards/f/nErXDvCkzz/{slug(body['title'])}",
                "hasAcl": False,
                "canSave": True,
                "canEdit": True,
                "canAdmin": True,
                "createdBy": "admin",
                "created": "2018-01-31T17:43:12+01:00",
                "updatedBy": "admin",
                "updated": "2018-01-31T17:43:12+01:00",
                "version": 1,
            },
        )

    def _save_dashboard(self, query: dict[str, list[str]], body: Any) -> None:
        if self.server.version_mismatch:
            return self._reply(
                412,
                {
                    "message": "The dashboard has been changed by someone else",
                    "status": "version-mismatch",
                },
            )
        uid = body["dashboard"]["uid"]
        version = self.server.versions[uid] = self.server.versions.get(uid, 0) + 1
        name = slug(body["dashboard"]["title"])
        self._reply(
            200,
            {
                "id": list(self.server.versions).index(uid) + 1,
                "uid": uid,
                "url": f"/d/{uid}/{name}",
                "status": "success",
                "version": version,
                "slug": name,
            },
        )

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def bigevy(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `bigevy` command, as an operator runs it (wide, so table rows stay whole)."""
    return subprocess.run(
        [str(BIGEVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


def test_push_creates_the_folder_and_saves_each_dashboard_over_what_is_there(
    grafana: FakeGrafana,
) -> None:
    done = bigevy("dashboards", "push", "--url", grafana.url, "--token", TOKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert grafana.posted("/api/folders") == [{"title": "bigEVY"}]  # not "bigEVY archive"
    saved = grafana.posted("/api/dashboards/db")
    assert [body["dashboard"] for body in saved] == [build() for build in DASHBOARDS.values()]
    assert all(body["overwrite"] is True and body["folderUid"] == "nErXDvCkzz" for body in saved)
    assert {auth for *_, auth, _ in grafana.requests} == {f"Bearer {TOKEN}"}
    for uid in DASHBOARDS:
        assert f"{grafana.url}/d/{uid}/" in done.stdout

    # Pushed again: the folder is found by its title, and each dashboard gets a new version.
    again = bigevy("dashboards", "push", "--url", grafana.url, "--token", TOKEN)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(grafana.posted("/api/folders")) == 1
    assert grafana.versions == dict.fromkeys(DASHBOARDS, 2)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stdout + done.stderr
    return lines[0]


def test_push_with_a_wrong_token_ends_as_one_line(grafana: FakeGrafana) -> None:
    line = one_line(bigevy("dashboards", "push", "--url", grafana.url, "--token", "wrong"))
    assert line.startswith(f"Grafana at {grafana.url}: 401 Unauthorized")
    assert "--token" in line
    assert grafana.posted("/api/dashboards/db") == []


def test_push_refused_for_a_version_mismatch_ends_as_one_line(grafana: FakeGrafana) -> None:
    grafana.version_mismatch = True
    line = one_line(bigevy("dashboards", "push", "--url", grafana.url, "--token", TOKEN))
    assert line == (
        f"Grafana at {grafana.url}: 412 The dashboard has been changed by someone else "
        "(version-mismatch)"
    )


def test_push_to_no_grafana_ends_as_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line(bigevy("dashboards", "push", "--url", url, "--token", TOKEN))
    assert line.startswith(f"Grafana is not reachable at {url}")
