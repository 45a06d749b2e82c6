"""A staged rollout to a simulated fleet with failing nodes: how soon it pauses, and how many
nodes the failing artifact reached, against the same artifact sent to every node at once.

    .venv/bin/python benchmarks/rollout_safety.py [--nodes 200] [--fail-share 0.05]
        [--phases 5,25,100] [--heartbeat-interval 5]

Both runs go against one in-process bigEVY, each with its own freshly enrolled fleet of the
same size, the same nodes set to fail their self-test (a fixed choice by index), and the same
pause threshold (`updates.pause_above`, 2 %). The baseline is one phase of 100 %: what a
fleet gets without staging. Reached = nodes offered the artifact before the rollout paused;
beyond = nodes of a later phase than the one paused in that were offered it anyway (must be 0).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import httpx
from lilevy.simulator import RolloutOutcome, simulate
from local_serve import HEADERS, start_serve

from bigevy.config import Settings, UpdatesSpec


def upload(base_url: str, version: str) -> str:
    reply = httpx.post(
        f"{base_url}/v1/artifacts",
        params={"kind": "software", "version": version},
        content=os.urandom(64 * 1024),
        headers=HEADERS,
        timeout=60,
    )
    reply.raise_for_status()
    return reply.json()["id"]


def run(base_url: str, args: argparse.Namespace, phases: list[float], tag: str) -> RolloutOutcome:
    report = simulate(
        base_url,
        HEADERS["Authorization"].split()[1],
        args.nodes,
        args.max_duration,
        heartbeat_interval_s=args.heartbeat_interval,
        question_every_s=10_000.0,  # no questions: this is about updates
        region=f"bench-{tag}",
        seed=1,
        rollout_artifact=upload(base_url, f"lilevy-{tag}"),
        rollout_phases=phases,
        fail_share=args.fail_share,
    )
    assert report.rollout is not None
    return report.rollout


def reached(outcome: RolloutOutcome) -> int:
    return sum(n for status, n in outcome.counts.items() if status != "pending")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--fail-share", type=float, default=0.05)
    parser.add_argument("--phases", default="5,25,100")
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--max-duration", type=float, default=600.0)
    args = parser.parse_args()
    phases = [float(p) for p in args.phases.split(",")]

    with tempfile.TemporaryDirectory(prefix="bigevy-rollout-bench-") as data:
        settings = Settings(
            data_dir=Path(data), updates=UpdatesSpec(soak_s=0, check_interval_s=1.0)
        )
        base_url = start_serve(settings)
        os.nice(15)  # the simulated fleet yields to the server it measures (as in fleet_simulation)
        try:
            staged = run(base_url, args, phases, "staged")
            at_once = run(base_url, args, [100.0], "at-once")
        finally:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()

    print(f"\nrollout to {args.nodes} simulated nodes, {staged.failing_nodes} set to fail")
    print(f"{'':<22}{'state':<10}{'paused after':>14}{'reached':>9}{'failed':>8}{'beyond':>8}")
    for name, o in ((f"staged {args.phases}", staged), ("all at once", at_once)):
        after = "-" if o.settled_after_s is None else f"{o.settled_after_s:.1f} s"
        print(
            f"{name:<22}{o.state:<10}{after:>14}{reached(o):>9}{o.counts['failed']:>8}"
            f"{o.offered_beyond:>8}"
        )
    ratio = reached(staged) / max(1, reached(at_once))
    failed = staged.counts["failed"] / max(1, at_once.counts["failed"])
    print(f"nodes reached by the failing artifact, staged / at once: {ratio:.3f}")
    print(f"failed installs, staged / at once: {failed:.3f}")


if __name__ == "__main__":
    main()
