"""Alert fan-out: time from `POST /v1/alerts` to each connected node's receipt.

    .venv/bin/python benchmarks/alert_fanout.py [--nodes 200] [--alerts 5]

bigEVY in this process on a fresh local Ray (one gateway replica, the default config); N nodes
are enrolled and each holds `GET /v1/alerts/stream` open with the edge client's listener
(`lilevy.alerts.listen`: verify the signature, keep it in the node's SQLite, ack it), all
in one asyncio loop here. Each round posts one alert to every node's region and records, per
node, when its listener had verified and stored the alert (before its ack); rounds are 5 s
apart. The figures are over all nodes of all rounds. The 200 simulated nodes share this
process and its 2 cores with bigEVY, so their own work (signature checks, SQLite commits,
acks) is in the figures too.

Goal (issue 5, the seed's sync target): the last node within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from lilevy.alerts import EdgeAlerts, listen
from lilevy.client import EdgeClient, NodeDescription
from local_serve import HEADERS, start_serve

from bigevy.config import Settings


async def run(base_url: str, nodes: int, rounds: int, work: Path) -> list[float]:
    limits = httpx.Limits(max_connections=nodes + 50, max_keepalive_connections=nodes + 50)
    async with httpx.AsyncClient(limits=limits) as http:
        clients, stores = [], []
        print(f"enrolling {nodes} nodes ...", flush=True)
        for i in range(nodes):
            while True:  # the admin key's rate limit (50/s) paces enrolment
                made = await http.post(f"{base_url}/v1/enrollment-tokens", json={}, headers=HEADERS)
                if made.status_code != 429:
                    break
                await asyncio.sleep(float(made.headers.get("Retry-After", "1")))
            token = made.json()["token"]
            client = EdgeClient(base_url, http=http)
            enrolled = await client.enroll(token, NodeDescription(name=f"n{i}", region="coast"))
            clients.append(client)
            stores.append(EdgeAlerts(work / f"n{i}.db", enrolled.signing_public_key))
        received: dict[str, list[float]] = {}

        def on_alert(index: int):
            def record(alert: dict) -> None:
                received.setdefault(alert["id"], [0.0] * nodes)[index] = time.monotonic()

            return record

        stop = asyncio.Event()
        listeners = [
            asyncio.create_task(listen(c, s, on_alert(i), stop, 1.0))
            for i, (c, s) in enumerate(zip(clients, stores, strict=True))
        ]
        await asyncio.sleep(3.0)  # every stream open
        print(f"{nodes} streams open; posting alerts", flush=True)
        latencies: list[float] = []
        for r in range(rounds):
            body = {
                "identifier": f"bench-{r}-{time.time()}",
                "event": "Storm Surge",
                "severity": "Extreme",
                "urgency": "Immediate",
                "headline": "Storm surge expected tonight: move inland",
                "regions": ["coast"],
                "expires": time.time() + 3600,
            }
            posted_at = time.monotonic()
            reply = await http.post(f"{base_url}/v1/alerts", json=body, headers=HEADERS)
            alert_id = reply.json()["id"]
            deadline = posted_at + 60
            while time.monotonic() < deadline:
                times = received.get(alert_id, [])
                if times and all(times):
                    break
                await asyncio.sleep(0.02)
            times = received.get(alert_id, [0.0] * nodes)
            missing = sum(1 for t in times if not t)
            got = [t - posted_at for t in times if t]
            print(
                f"round {r + 1}: {len(got)}/{nodes} nodes, last after {max(got):.2f} s"
                + (f", {missing} MISSING after 60 s" if missing else ""),
                flush=True,
            )
            latencies.extend(got)
            await asyncio.sleep(5.0)  # alerts are separate events, not a burst
        stop.set()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--alerts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bigevy-fanout-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        base_url = start_serve(settings)
        print(f"bigEVY ready at {base_url}", flush=True)
        work = Path(tmp) / "nodes"
        work.mkdir()
        latencies = asyncio.run(run(base_url, args.nodes, args.alerts, work))
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(
        f"\n{args.nodes} streaming nodes x {args.alerts} alerts: receipt after POST "
        f"p50 {statistics.median(latencies):.3f} s, p95 {p(0.95):.3f} s, max {latencies[-1]:.3f} s "
        "(goal: max <= 10 s)"
    )


if __name__ == "__main__":
    main()
