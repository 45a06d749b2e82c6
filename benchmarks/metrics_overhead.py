"""What bigEVY's own metrics cost: escalations and heartbeats per second with them on and off
(`BIGEVY_METRICS`), measured in one run.

    .venv/bin/python benchmarks/metrics_overhead.py [--windows 12] [--window 15] [--clients 8]
        [--alternate]

Two bigEVYs run side by side, each on a local Ray of its own started by a child process of
this one (`local_serve.start_serve`) with the switch in its environment (its Ray, and so
every replica, inherits it; `deployments/app.py` passes it on as well): one with metrics on,
one off. In each window (`--window` seconds counted, after `SETTLE_S`) both are loaded at
once by `--clients` closed-loop clients each, so whatever else runs on the machine hits both
at the same instant: each gets about half the machine, and what metrics cost shows as fewer
requests answered and more CPU spent per request by the one with them on. `--alternate` loads
one at a time instead (on, off, off, on, ...): the throughput one bigEVY gets from the
machine, but on a shared VM whose load changes within seconds, windows apart differ by far
more than 3 %. Restarting one Ray per setting (a minute a start) was slower still.

- escalations: each client is an enrolled node (region KE) and POSTs /v1/evy/query with an
  Idempotency-Key (as lilEVY sends one), cycling through English questions the starter pack
  answers extractively (checked first; others are dropped). The answer cache is off
  (`knowledge.answer_cache.enabled`), so every escalation runs the whole path: triage,
  retrieval, compose, its record, the FAQ count after the reply.
- heartbeats: the same nodes POST /v1/nodes/{id}/heartbeat with battery, storage and outbox
  figures (a counter and three histograms per beat).

The node rate limit (1/s, burst 30) is raised for the benchmark (`fleet.rate_limits["node"]`),
else closed-loop clients would measure the token bucket; every other setting is the default
(the SmolLM2 model is loaded but idle: extractive answers call no model). Before the windows,
each bigEVY gets the starter pack, the nodes, and each question until its FAQ entry is
published. CPU per request is the CPU time of a bigEVY's whole process tree (its Ray's daemons
and workers) in the window over the requests it answered.

The comparison is checked, not assumed: at the end, the Ray metrics agent of the "on" bigEVY
(its node's metrics export port) must have exported `ray_bigevy_escalations_total` and
`ray_bigevy_heartbeats_total` equal to the requests it answered, and the "off" one's agent no
`ray_bigevy_` series at all.

Goal (issue 25): metrics cost at most 3 % of throughput (on/off >= 0.97 on both paths).
Reported per path: the means, and the mean on/off of the windows compared (one window with
both at once, or two next to each other) with a 95 % interval, which says whether the run
tells 3 % apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve
from rich.progress import Progress

from bigevy.config import RateLimit, Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read
from bigevy.metrics import SWITCH

#: Questions the starter pack answers from its own sentences; any that is not (an emergency,
#: a refusal) is dropped before the windows.
QUESTIONS = (
    "How do I make river water safe to drink?",
    "How do I treat a burn?",
    "What are the signs of dehydration?",
    "How can I avoid malaria?",
    "What should I do during an earthquake?",
    "How do I keep cool in very hot weather?",
    "What should I do if lightning is near?",
    "How do I prepare for a cyclone?",
    "What do I do if my house is flooding?",
    "How do I put out a small cooking fire?",
)
REGION = "KE"
#: With --alternate, the settings in the order of windows: on, off, off, on, ...
ORDER = ("on", "off", "off", "on")
#: Seconds at the start of a window not counted: the last window's FAQ counts (run after
#: their replies) finish, and connections open.
SETTLE_S = 3.0
#: How long a Ray agent may take to export what replicas recorded.
EXPORT_WAIT_S = 60.0
#: FAQ entries are published from the third asking (`knowledge.faq.min_count`).
ASKINGS = 3
PATHS = ("escalations", "heartbeats")

#: A request: path, JSON body, headers.
Request = tuple[str, dict[str, Any], dict[str, str]]


@dataclass
class Node:
    node_id: str
    headers: dict[str, str]


@dataclass
class Server:
    """One bigEVY in a child process, with metrics `setting`."""

    setting: str
    process: subprocess.Popen[str]
    log: IO[str]
    base_url: str = ""
    admin: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    nodes: list[Node] = field(default_factory=list)
    #: Requests answered (200) per path, all of them: what its agent must have counted.
    answered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))
    #: Requests per second of each of its windows, per path.
    rates: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    #: CPU milliseconds its process tree spent per request answered, each window, per path.
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})


def settings_for(data_dir: Path) -> Settings:
    settings = Settings(data_dir=data_dir)
    settings.knowledge.answer_cache.enabled = False  # every escalation runs the whole path
    settings.fleet.rate_limits["node"] = RateLimit(per_second=100_000, burst=100_000)
    return settings


def serve_until_stdin_closes(setting: str, data_dir: Path) -> None:
    """The child: bigEVY on a local Ray of its own (its processes inherit the switch), its
    address on stdout, until the parent closes stdin."""
    import ray
    from ray import serve

    os.environ[SWITCH] = setting
    settings = settings_for(data_dir)
    for attempt in range(2):  # RAY_NOTES.md: the very first start on a machine can fail once
        try:
            base_url = start_serve(settings)
            break
        except Exception:
            serve.shutdown()
            ray.shutdown()
            if attempt:
                raise
    ready = {
        "base_url": base_url,
        "admin": HEADERS,
        "metrics_port": ray.nodes()[0]["MetricsExportPort"],
    }
    print(json.dumps(ready), flush=True)
    try:
        sys.stdin.read()
    finally:
        serve.shutdown()
        ray.shutdown()


def launch(setting: str, work: Path) -> Server:
    log = (work / f"serve-{setting}.log").open("w")
    command = [sys.executable, __file__, "--serve", setting, "--data-dir", str(work / setting)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    )
    return Server(setting, process, log)


def wait_ready(server: Server) -> None:
    assert server.process.stdout is not None
    line = server.process.stdout.readline()
    if not line:
        raise SystemExit(f"bigEVY ({server.setting}) did not start: see {server.log.name}")
    ready = json.loads(line)
    server.base_url, server.admin = ready["base_url"], ready["admin"]
    server.metrics_port = ready["metrics_port"]


def close(server: Server) -> None:
    """Closing its stdin stops the child's Serve and Ray; killed if it hangs."""
    if server.process.stdin is not None:
        server.process.stdin.close()
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log.close()


def escalation(node: Node, question: str) -> Request:
    body = {"node_id": node.node_id, "message": question, "language": "en"}
    return "/v1/evy/query", body, node.headers


def ask(node: Node, questions: list[str], offset: int, i: int) -> Request:
    """The node's `i`th escalation: the questions in turn, each node starting elsewhere."""
    return escalation(node, questions[(offset + i) % len(questions)])


def heartbeat(node: Node, i: int) -> Request:
    body = {
        "battery_percent": 72.0,
        "power_source": "solar",
        "uptime_s": 86_400.0,
        "sms_in": 3,
        "sms_out": 3,
        "queue_depth": 2,
        "free_storage_mb": 900.0,
        "connectivity": ["sms"],
        "measured_at": time.time(),
    }
    return f"/v1/nodes/{node.node_id}/heartbeat", body, node.headers


def prepare(server: Server, clients: int) -> list[str]:
    """Load the starter pack, enrol the nodes, publish the questions' FAQ entries; the
    questions answered extractively."""
    http = httpx.Client(base_url=server.base_url, headers=server.admin, timeout=300)
    docs = [r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document]
    http.post("/v1/knowledge/documents/batch", json={"documents": docs}).raise_for_status()
    for i in range(clients):
        token = http.post("/v1/enrollment-tokens", json={}).json()["token"]
        enrolled = httpx.post(
            f"{server.base_url}/v1/nodes/enroll",
            json={"token": token, "name": f"bench-{i}", "region": REGION},
            timeout=30,
        )
        enrolled.raise_for_status()
        key = enrolled.json()["node_key"]
        server.nodes.append(Node(enrolled.json()["node_id"], {"Authorization": f"Bearer {key}"}))
    questions = []
    for question in QUESTIONS:
        for _ in range(ASKINGS):
            path, body, headers = escalation(server.nodes[0], question)
            reply = httpx.post(f"{server.base_url}{path}", json=body, headers=headers, timeout=120)
            reply.raise_for_status()
            server.answered["escalations"] += 1
        answer = reply.json()
        kept = answer["answer_mode"] == "extractive" and not answer["triage"]["emergency"]
        if not kept:
            print(f"  ({server.setting}) dropped {question!r}: {answer['answer_mode']}")
        else:
            questions.append(question)
    time.sleep(5)  # the FAQ counts run after the replies
    http.post("/v1/knowledge/maintain").raise_for_status()  # the windows start indexed
    http.close()
    return questions


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants: a bigEVY's Ray, its daemons and workers."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def load(
    server: Server, clients: list[Callable[[int], Request]], settle: float, window: float
) -> tuple[int, int, float, dict[int, int]]:
    """Closed-loop clients, each sending its next request (`client(i)`) as soon as the last is
    answered: (answered in the window, answered in all, CPU seconds the server's Ray spent in
    the window, statuses). The window is the `window` seconds after `settle`."""
    window_start = time.monotonic() + settle
    window_end = window_start + window
    statuses: dict[int, int] = {}
    in_window = answered = 0
    cpu: list[float] = []

    async def meter() -> None:
        await asyncio.sleep(settle)
        cpu.append(cpu_seconds(server.process.pid))
        await asyncio.sleep(window)
        cpu.append(cpu_seconds(server.process.pid))

    limits = httpx.Limits(max_connections=len(clients), max_keepalive_connections=len(clients))
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=120) as http:

        async def run(client: Callable[[int], Request]) -> None:
            nonlocal in_window, answered
            i = 0
            while time.monotonic() < window_end:
                path, body, headers = client(i)
                i += 1
                headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
                reply = await http.post(path, json=body, headers=headers)
                statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                if reply.status_code == 200:
                    answered += 1
                    in_window += window_start <= time.monotonic() < window_end

        await asyncio.gather(meter(), *(run(client) for client in clients))
    return in_window, answered, cpu[1] - cpu[0], statuses


def clients_of(server: Server, path: str, questions: list[str]) -> list[Callable[[int], Request]]:
    if path == "escalations":
        return [partial(ask, n, questions, k) for k, n in enumerate(server.nodes)]
    return [partial(heartbeat, n) for n in server.nodes]


def exported(server: Server) -> dict[str, float]:
    """bigEVY's counters as its Ray's metrics agent exports them now."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    found = {"escalations": 0.0, "heartbeats": 0.0, "series": 0.0}
    for line in httpx.get(url, timeout=10).text.splitlines():
        if not line.startswith("ray_bigevy_"):
            continue
        found["series"] += 1
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("ray_bigevy_escalations_total{"):
            found["escalations"] += value
        elif line.startswith("ray_bigevy_heartbeats_total{"):
            found["heartbeats"] += value
    return found


def check_export(on: Server, off: Server) -> dict[str, float]:
    """The "on" agent counted every request answered (it exports every few seconds); the
    "off" one has no bigEVY series at all. What the "on" agent exported."""
    leaked = exported(off)
    if leaked["series"]:
        raise SystemExit(f"metrics off, yet its Ray exports bigEVY's: {leaked}")
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        found = exported(on)
        if all(found[path] == on.answered[path] for path in PATHS):
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"Ray exported {found}, bigEVY answered {on.answered}")
        time.sleep(2)


def interval(ratios: list[float]) -> tuple[float, float]:
    """Mean and half-width of a 95 % interval (normal approximation)."""
    mean = statistics.mean(ratios)
    if len(ratios) < 2:
        return mean, float("nan")
    return mean, 1.96 * statistics.stdev(ratios) / len(ratios) ** 0.5


def pairs_of(schedule: list[tuple[str, ...]]) -> list[tuple[int, int]]:
    """(on, off) window indices, each into its server's own list, of the windows compared:
    one loading both at once, or two next to each other (2k and 2k+1, one on and one off)."""
    seen = {"on": 0, "off": 0}
    index = []
    for settings in schedule:
        index.append({s: seen[s] for s in settings})
        for setting in settings:
            seen[setting] += 1
    if any(len(settings) == 1 for settings in schedule):
        index = [{**index[i], **index[i + 1]} for i in range(0, len(schedule) - 1, 2)]
    return [(window["on"], window["off"]) for window in index]


def summary(on: Server, off: Server, pairs: list[tuple[int, int]]) -> None:
    print(
        "\n| path | on (mean /s) | off (mean /s) | on/off | throughput cost | on/off per pair, "
        "95 % interval | goal (<= 3 %) | CPU ms/request on / off | CPU cost, per pair, 95 % |"
        "\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for path in PATHS:
        mean_on, mean_off = statistics.mean(on.rates[path]), statistics.mean(off.rates[path])
        ratios = [on.rates[path][i] / off.rates[path][j] for i, j in pairs]
        pair_mean, half = interval(ratios)
        cost = 1 - mean_on / mean_off
        cpu_on, cpu_off = statistics.mean(on.cpu_ms[path]), statistics.mean(off.cpu_ms[path])
        cpu_mean, cpu_half = interval([on.cpu_ms[path][i] / off.cpu_ms[path][j] for i, j in pairs])
        print(
            f"| {path} | {mean_on:.1f} | {mean_off:.1f} | {mean_on / mean_off:.3f} | "
            f"{cost:+.1%} | {pair_mean:.3f} ± {half:.3f} | "
            f"{'met' if cost <= 0.03 else 'NOT met'} | {cpu_on:.1f} / {cpu_off:.1f} | "
            f"{cpu_mean - 1:+.1%} ± {cpu_half:.1%} |"
        )


async def at_once(
    servers: list[Server], path: str, questions: list[str], window: float
) -> list[tuple[int, int, float, dict[int, int]]]:
    """One window: each of `servers` under its own clients, at the same time."""
    return await asyncio.gather(
        *(load(s, clients_of(s, path, questions), SETTLE_S, window) for s in servers)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=12, help="per path")
    parser.add_argument("--window", type=float, default=15.0, help="seconds counted per window")
    parser.add_argument("--clients", type=int, default=8, help="concurrent nodes per bigEVY")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="load one bigEVY at a time (on, off, off, on, ...) instead of both at once",
    )
    parser.add_argument("--serve", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_until_stdin_closes(args.serve, args.data_dir)
        return
    if args.windows < 2 or (args.alternate and args.windows % 2):
        parser.error("--windows: at least 2, and an even number with --alternate")
    if args.alternate:
        schedule = [(ORDER[i % len(ORDER)],) for i in range(args.windows)]
    else:
        schedule = [("on", "off")] * args.windows
    with tempfile.TemporaryDirectory(prefix="bigevy-metrics-") as tmp:
        servers = {s: launch(s, Path(tmp)) for s in ("on", "off")}
        try:
            print("starting two bigEVYs (metrics on, off) ...", flush=True)
            for server in servers.values():
                wait_ready(server)
            print("loading the starter pack, enrolling nodes, publishing FAQ entries ...")
            asked = [prepare(server, args.clients) for server in servers.values()]
            questions = [q for q in asked[0] if all(q in a for a in asked[1:])]
            with Progress() as progress:
                task = progress.add_task("windows", total=len(PATHS) * len(schedule))
                for path in PATHS:
                    for i, settings in enumerate(schedule):
                        loaded = [servers[s] for s in settings]
                        progress.update(task, description=f"{path} {i + 1}: {'+'.join(settings)}")
                        done = asyncio.run(at_once(loaded, path, questions, args.window))
                        for server, (counted, answered, cpu, statuses) in zip(
                            loaded, done, strict=True
                        ):
                            if set(statuses) != {200}:
                                progress.console.print(f"  {path} ({server.setting}): {statuses}")
                            server.rates[path].append(counted / args.window)
                            server.cpu_ms[path].append(cpu * 1000 / max(counted, 1))
                            server.answered[path] += answered
                        progress.advance(task)
            print("checking what each Ray exported ...", flush=True)
            found = check_export(servers["on"], servers["off"])
        finally:
            for server in servers.values():
                close(server)
    pairs = pairs_of(schedule)
    print(
        f"\n{'one at a time' if args.alternate else 'both at once'}, {args.clients} clients "
        f"each, {args.windows} windows of {args.window:.0f} s per path, "
        f"{len(questions)} questions, answer cache off; exported with metrics on: "
        f"{found['escalations']:.0f} escalations, {found['heartbeats']:.0f} heartbeats "
        f"({found['series']:.0f} bigEVY series), with metrics off: none"
    )
    on, off = servers["on"], servers["off"]
    for path in PATHS:
        cells = ", ".join(
            f"{on.rates[path][i]:.1f} / {off.rates[path][j]:.1f} "
            f"({on.cpu_ms[path][i]:.1f} / {off.cpu_ms[path][j]:.1f} ms)"
            for i, j in pairs
        )
        print(f"  {path} per pair, on / off per s (CPU per request): {cells}")
    summary(on, off, pairs)


if __name__ == "__main__":
    main()
