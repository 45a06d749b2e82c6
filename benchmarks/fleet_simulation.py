"""A simulated lilEVY fleet against an in-process bigEVY: sustained heartbeats, latency,
errors, and whether any acknowledged heartbeat went missing.

    .venv/bin/python benchmarks/fleet_simulation.py [--nodes 200] [--duration 300]
        [--heartbeat-interval 5] [--question-every 60] [--database sqlite|postgresql]

Lost heartbeats = heartbeats bigEVY acknowledged (2xx) - rows in its heartbeats table for the
simulated nodes: anything but 0 means an acknowledged write was lost (or stored twice, < 0).
`--database postgresql` starts a throw-away PostgreSQL (tests/support/postgres.py) for the metadata.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support.postgres

from lilevy.simulator import SimulationReport, simulate
from local_serve import start_serve
from sqlalchemy import func, select

from bigevy.config import Settings
from bigevy.fleet.models import Escalation, Heartbeat
from bigevy.fleet.roles import Role
from bigevy.fleet.service import open_fleet


@contextlib.contextmanager
def metadata_database(kind: str) -> Iterator[str | None]:
    """None (SQLite in the data dir) or the URL of a throw-away PostgreSQL."""
    if kind == "sqlite":
        yield None
        return
    from tests.support.postgres import PostgresServer

    with PostgresServer() as server:
        yield server.url


def stored_rows(settings: Settings, node_ids: list[str]) -> tuple[int, int]:
    """Heartbeat and escalation rows of these nodes in bigEVY's database."""
    fleet = open_fleet(settings)
    try:
        with fleet.sessions() as session:
            beats = session.scalar(
                select(func.count()).select_from(Heartbeat).where(Heartbeat.node_id.in_(node_ids))
            )
            asked = session.scalar(
                select(func.count()).select_from(Escalation).where(Escalation.node_id.in_(node_ids))
            )
        return int(beats or 0), int(asked or 0)
    finally:
        fleet.engine.dispose()


def show(report: SimulationReport, database: str, beats: int, asked: int) -> None:
    print(f"\nfleet simulation on {database}: {report.nodes} nodes, {report.duration_s:.0f} s")
    print(f"  heartbeats/s sustained   {report.heartbeats_per_s:.1f}")
    print(f"  heartbeats acknowledged  {report.acknowledged_heartbeats}")
    print(f"  heartbeat rows stored    {beats}")
    print(f"  lost heartbeats          {report.acknowledged_heartbeats - beats}")
    print(f"  escalations answered     {report.kinds['escalation'].ok} ({asked} rows stored)")
    print("  latency ms (p50 / p95 / p99):")
    for kind, stats in report.kinds.items():
        cells = " / ".join("-" if v is None else f"{v:.0f}" for v in map(stats.p, (50, 95, 99)))
        counts = f"{stats.ok} ok, {stats.failed} failed, {stats.queued} queued"
        print(f"    {kind:<11} {cells}   ({counts})")
    print(f"  responses (every try)    {dict(sorted(report.responses.items()))}")
    print(f"  failed for good          {dict(sorted(report.failures.items())) or 0}")
    print(f"  5xx                      {report.server_errors}")
    print(f"  outbox depth at the end  {report.outbox_depth} ({report.dead_letters} dead letters)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--question-every", type=float, default=60.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bigevy-fleet-bench-") as data,
        metadata_database(args.database) as url,
    ):
        settings = Settings(data_dir=Path(data), database_url=url)
        fleet = open_fleet(settings)
        admin_key = fleet.create_key(Role.admin, "bench").key
        fleet.engine.dispose()
        base_url = start_serve(settings)
        # The simulated fleet shares this machine with the server it measures: at the niceness
        # Ray gives its workers (15), so the load generator does not pre-empt the gateway and
        # replicas as remote nodes could not. (Ray's own GCS and raylet keep their priority.)
        os.nice(15)
        try:
            report = simulate(
                base_url,
                admin_key,
                args.nodes,
                args.duration,
                heartbeat_interval_s=args.heartbeat_interval,
                question_every_s=args.question_every,
                seed=args.seed,
            )
            beats, asked = stored_rows(settings, report.node_ids)
        finally:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    show(report, args.database, beats, asked)


if __name__ == "__main__":
    main()
