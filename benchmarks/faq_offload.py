"""How much escalation traffic FAQ packs take off bigEVY: a simulated fleet asks questions,
bigEVY answers and counts them, the most asked ones ship back to the nodes in their knowledge
packages, and the nodes answer those themselves from then on.

    .venv/bin/python benchmarks/faq_offload.py [--nodes 20] [--duration 900]
        [--question-every 40] [--sync-every 60] [--zipf 1.0]

bigEVY on a fresh local Ray with the default config (SmolLM2 on llama.cpp answers what is
escalated); the fleet is `bigevy.edge.simulator` with `sync_every_s` (each node syncs its
SQLite + FTS5 knowledge store with verified packages, and answers a question itself when it
holds an FAQ entry sharing >= 60 % of its words) and questions drawn from
`bigevy/edge/questions.txt` with weight 1/rank**zipf, lightly reworded each time; `--cut` of
the syncs are cut short mid-download (resumed by the next). At the end every node's store is
compared with a full snapshot built for it. The zipf
weighting is a modelling assumption (a few questions dominate real SMS traffic); `--zipf 0`
asks uniformly. Baseline: the same fleet before any FAQ exists, i.e. the first minutes of the
run, where every question is escalated.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from local_serve import HEADERS, start_serve

from bigevy.config import Settings
from bigevy.edge.simulator import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--duration", type=float, default=900.0)
    parser.add_argument("--question-every", type=float, default=40.0)
    parser.add_argument("--sync-every", type=float, default=60.0)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--cut", type=float, default=0.2, help="share of syncs cut short")
    parser.add_argument("--restart", type=float, default=0.0, help="share of syncs after a restart")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bigevy-faq-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        base_url = start_serve(settings)
        admin_key = HEADERS["Authorization"].removeprefix("Bearer ")
        report = simulate(
            base_url,
            admin_key,
            args.nodes,
            args.duration,
            heartbeat_interval_s=30.0,
            question_every_s=args.question_every,
            region="KE",
            sync_every_s=args.sync_every,
            cut_probability=args.cut,
            restart_probability=args.restart,
            zipf=args.zipf,
            seed=args.seed,
        )
    asked = sum(a for a, _ in report.timeline)
    print(
        f"\n{report.nodes} nodes, {report.duration_s:.0f} s, {asked} questions "
        f"(zipf {args.zipf}), {report.packages_applied} packages applied"
    )
    print("minute  asked  answered on the node")
    for minute, (n, local) in enumerate(report.timeline):
        share = local / n if n else 0.0
        print(f"{minute:6d}  {n:5d}  {local:5d}  {share:6.1%}")
    third = max(1, len(report.timeline) // 3)
    last = report.timeline[-third:]
    last_asked = sum(a for a, _ in last)
    last_local = sum(local for _, local in last)
    escalations = report.kinds["escalation"]
    print(
        f"\nanswered on the node: {report.answered_locally}/{asked} overall; last third of the "
        f"run {last_local}/{last_asked} = {last_local / max(last_asked, 1):.1%} of escalations "
        f"removed (first minute: {report.timeline[0][1]}/{report.timeline[0][0]})"
    )
    print(
        f"escalations: {escalations.ok} answered by bigEVY, {escalations.failed} failed, "
        f"{escalations.queued} queued; 5xx seen {report.server_errors}"
    )
    print(
        f"sync: {report.packages_applied} packages applied, {report.kinds['sync'].failed} "
        f"downloads cut (resumed later), {report.restarts} node restarts; nodes out of sync "
        f"at the end: "
        f"{len(report.out_of_sync)} of {report.nodes}"
    )


if __name__ == "__main__":
    main()
