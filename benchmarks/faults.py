"""Faults while a simulated fleet runs: is anything lost or duplicated, and how long does
bigEVY take to come back?

While 20 lilEVY nodes heartbeat, escalate (through their outboxes) and sync knowledge with
downloads cut short and restarts, this script:
1. ingests documents in batches and kills the knowledge replica in the middle of it (the
   ingester retries what failed, as `bigevy ingest` is re-run);
2. kills the model replica while a streamed completion is being generated;
3. kills the gateway replica (the HTTP side restarts).
Serve replaces each replica; recovery is the time from the kill to the first successful call
of that kind. At the end: every document is there once, every escalation a node was answered
(live or from its outbox) was recorded once, every acknowledged heartbeat is one row, and every
node's knowledge matches a full snapshot.

    .venv/bin/python benchmarks/faults.py [--nodes 20] [--documents 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from lilevy.simulator import simulate
from local_serve import HEADERS, start_serve

from bigevy.config import Settings
from bigevy.fleet.models import Escalation, Heartbeat
from bigevy.fleet.service import open_fleet


def kill_replica(deployment: str) -> float:
    """Kill one replica of `deployment` (Serve starts another); when it was killed."""
    import ray

    names = [
        a for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::bigevy#{deployment}#")
    ]  # fmt: skip
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)
    return time.monotonic()


def until_ok(call, since: float, timeout: float = 300.0) -> float:
    """Seconds from `since` until `call()` answers 2xx."""
    while time.monotonic() - since < timeout:
        try:
            if call().is_success:
                return time.monotonic() - since
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no recovery within {timeout} s")


def ingest_through_a_kill(http: httpx.Client, count: int) -> tuple[int, float]:
    """Documents put in batches of 20; the knowledge replica dies after the first third.
    Failed batches and items are sent again. (errors seen, recovery seconds)."""
    docs = [
        {"id": f"fault-{i}", "title": f"Notice {i}", "text": f"Market day {i} is on Monday.",
         "category": "community", "source": "local"}
        for i in range(count)
    ]  # fmt: skip
    pending, errors, killed_at, recovered = list(docs), 0, None, None
    while pending:
        batch, pending = pending[:20], pending[20:]
        if killed_at is None and len(pending) < 2 * count // 3:
            killed_at = kill_replica("knowledge")
        try:
            reply = http.post("/v1/knowledge/documents/batch", json={"documents": batch})
        except httpx.HTTPError:
            reply = None
        if reply is None or not reply.is_success:
            errors += 1
            pending = batch + pending
            time.sleep(0.5)
            continue
        failed = [d for d, r in zip(batch, reply.json()["results"], strict=True)
                  if r["status"] == "failed"]  # fmt: skip
        errors += len(failed)
        pending = failed + pending
        if killed_at is not None and recovered is None and not failed:
            recovered = time.monotonic() - killed_at
    return errors, recovered or 0.0


def stream_through_a_kill(http: httpx.Client) -> tuple[str, float]:
    """A streamed completion whose model replica dies mid-stream: what the client saw, and
    the seconds until a completion succeeds again."""
    body = {"messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": 400, "stream": True}  # fmt: skip
    seen = "completed"
    try:
        with http.stream("POST", "/v1/chat/completions", json=body) as reply:
            for n, _ in enumerate(reply.iter_lines()):
                if n == 5:
                    killed_at = kill_replica("model-smollm2-135m-instruct")
            seen = "stream ended" + ("" if reply.is_success else f" ({reply.status_code})")
    except httpx.HTTPError as exc:
        seen = f"stream broken: {type(exc).__name__}"
    small = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return seen, until_ok(lambda: http.post("/v1/chat/completions", json=small), killed_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--duration", type=float, default=150.0)
    args = parser.parse_args()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bigevy-faults-")))
    base_url = start_serve(settings)
    admin = HEADERS["Authorization"].removeprefix("Bearer ")
    http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=120)
    result: dict = {}

    def fleet() -> None:
        result["report"] = simulate(
            base_url, admin, args.nodes, args.duration, heartbeat_interval_s=3.0,
            question_every_s=15.0, sync_every_s=10.0, cut_probability=0.3,
            restart_probability=0.1, seed=7,
        )  # fmt: skip

    running = threading.Thread(target=fleet)
    running.start()
    time.sleep(15)
    ingest_errors, knowledge_s = ingest_through_a_kill(http, args.documents)
    print(f"knowledge killed mid-ingest: {ingest_errors} errors, back in {knowledge_s:.1f} s")
    seen, model_s = stream_through_a_kill(http)
    print(f"model replica killed mid-stream: {seen}; completions back in {model_s:.1f} s")
    killed_at = kill_replica("gateway")
    gateway_s = until_ok(lambda: http.get("/v1/models"), killed_at)
    print(f"gateway replica killed: answering again in {gateway_s:.1f} s", flush=True)
    running.join()
    report = result["report"]

    ids: list[str] = []
    for offset in range(0, 100_000, 500):
        page = http.get("/v1/knowledge/documents", params={"offset": offset, "limit": 500})
        page.raise_for_status()
        ids += [d["id"] for d in page.json()["data"] if d["id"].startswith("fault-")]
        if len(page.json()["data"]) < 500:
            break
    fleet_db = open_fleet(settings)
    with fleet_db.sessions() as session:
        escalations = session.query(Escalation).count()
        heartbeats = session.query(Heartbeat).count()
    answered = report.kinds["escalation"].ok + report.kinds["escalation"].queued
    rows = [
        ("documents", args.documents, len(set(ids)), len(ids) - len(set(ids))),
        ("escalations (answered or queued)", answered, escalations, max(0, escalations - answered)),
        ("heartbeats acknowledged", report.acknowledged_heartbeats, heartbeats,
         max(0, heartbeats - report.acknowledged_heartbeats)),
    ]  # fmt: skip
    print("\n| what | expected | found | lost | duplicated |\n| --- | --- | --- | --- | --- |")
    for what, expected, found, dup in rows:
        print(f"| {what} | {expected} | {found} | {max(0, expected - found)} | {dup} |")
    print(
        f"\noutbox left: {report.outbox_depth}, dead letters: {report.dead_letters}, nodes out "
        f"of sync: {len(report.out_of_sync)}, packages applied: {report.packages_applied}, "
        f"node restarts: {report.restarts}"
    )
    errors = {k: v for k, v in report.responses.items() if not k.startswith("2")}
    print(f"errors the nodes saw (every try): {errors}")
    print("\n| replica killed | recovery (s) |\n| --- | --- |")
    print(f"| knowledge (mid-ingest) | {knowledge_s:.1f} |\n| model (mid-stream) | {model_s:.1f} |")
    print(f"| gateway | {gateway_s:.1f} |")


if __name__ == "__main__":
    main()
