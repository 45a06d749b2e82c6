"""Retrieval at scale: ANN quality, latency and memory of the knowledge base at 100k and 1M
chunks, built through `KnowledgeStore.upsert_many` from synthetic clustered vectors.

    .venv/bin/python benchmarks/retrieval_scale.py [--sizes 100000,1000000] [--queries 200]
        [--workdir /tmp/bigevy-scale] [--rounds 3] [--embed-threads N] [--skip-serve]
        [--no-sweep]

`--rounds 0` measures recall only; `--skip-serve` leaves out Ray (quick iterations).
`--embed-threads 1` on a shared machine: torch on all cores stalls whenever another process
takes one of them (measured 400+ ms per query on 2 busy cores), raw and Serve alike.

Per size: build (or reuse) the store and time `maintain()` (the IVF_PQ index build); Recall@10
of ANN vs exact (numpy brute force over every stored vector); then, alternately over rounds so
drift in machine load hits all paths alike, sequential p50/p95 latency of
  - LanceDB direct: the query `KnowledgeStore.search` issues, on an already embedded vector;
  - raw: embed the query text with `Embedder` + that LanceDB query, in a process of its own;
  - Serve: `POST /v1/rag/search` with `mode: "vector"` (embeds the text with the same model);
and the RSS of the knowledge replica vs. the raw process.

Goals: Recall@10 >= 0.95; Serve p50 <= 1.3x raw (embed + LanceDB) p50.
Vectors are synthetic (a Gaussian mixture), so Serve's query-text neighbours mean nothing:
only its latency is measured. The store is cached per size under --workdir and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bigevy.config import EmbedderSpec, KnowledgeSpec, Settings, VectorIndexSpec
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.records import DocumentIn, SearchFilters
from bigevy.knowledge.store import KnowledgeStore
from bigevy.knowledge.taxonomy import Category, Source

# Ray starts its processes by fork + exec, so the LanceDB runtime of this process never runs
# in a child; the warning LanceDB gives on each fork says nothing here.
warnings.filterwarnings("ignore", message="lancedb fork support is experimental")

DIMENSIONS = 384  # all-MiniLM-L6-v2, the packaged embedder; checked when it is loaded
MODEL_ID = EmbedderSpec().id
#: The chunks table the knowledge deployment opens (synthetic rows: no text is chunked).
CHUNK_LAYOUT = layout(KnowledgeSpec().chunk_size, KnowledgeSpec().chunk_overlap)
K = 10
FETCH = 2 * K  # KnowledgeStore.search fetches k * 2 (room for stale chunks), so we do too
#: The columns KnowledgeStore.search reads (its _HIT_COLUMNS and the distance): not the vector.
COLUMNS = ["id", "document_id", "version", "title", "text", "url", "category", "source"]
BATCH = 5_000  # documents per upsert_many: three LanceDB commits each
CATEGORIES = [
    Category.emergency,
    Category.healthcare,
    Category.weather_safety,
    Category.medicine,
    Category.community,
    Category.transportation,
]
SOURCES = [Source.local, Source.medical, Source.government, Source.weather]
FILTER = SearchFilters(categories=[str(Category.healthcare)])  # 1 row in 6
VOCABULARY_SIZE = 5_000
QUESTIONS = [
    "How do I treat",
    "What are the symptoms of",
    "Where can I get help with",
    "What should I do about",
    "How can I prevent",
    "Who do I call for",
    "Is it safe to travel during",
    "How long does it take to recover from",
    "What is the first aid for",
    "When should I see a doctor about",
]
TOPICS = [
    "a snake bite",
    "a flood",
    "malaria",
    "a broken arm",
    "dehydration",
    "a cyclone warning",
    "a power outage",
    "contaminated water",
    "a fever in a child",
    "a road closure",
    "a heat wave",
    "a burn",
    "diarrhoea",
    "a bus strike",
    "an earthquake",
    "a dog bite",
    "a chest pain",
    "a landslide",
    "cholera",
    "a fire",
]


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- synthetic corpus ------------------------------------------------------------------------


class Mixture:
    """Clustered unit vectors, like sentence embeddings: topics of uneven size and spread.

    Each point is its centre plus Gaussian noise, normalised: a point keeps cosine ~0.6-0.8 to
    its centre and ~0.4-0.6 to its cluster mates, ~0 to the rest. Uniform noise would make
    every neighbour equally far and tell nothing about how IVF partitions fit real data.
    """

    def __init__(self, centres: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.centres = normalise(rng.standard_normal((centres, DIMENSIONS), dtype=np.float32))
        weights = rng.lognormal(0.0, 1.0, centres)
        self.weights = weights / weights.sum()
        self.spread = rng.uniform(0.035, 0.06, centres).astype(np.float32)

    def sample(self, start: int, n: int) -> np.ndarray:
        """Rows start..start+n, the same on every run (a build can resume)."""
        rng = np.random.default_rng([self.seed, start])
        cluster = rng.choice(len(self.centres), n, p=self.weights)
        noise = rng.standard_normal((n, DIMENSIONS), dtype=np.float32)
        return normalise(self.centres[cluster] + self.spread[cluster, None] * noise)


def synthetic_batch(mixture: Mixture, start: int, n: int) -> list:
    """(DocumentIn, [text], [vector]) for documents start..start+n: one chunk each."""
    rng = np.random.default_rng([mixture.seed, start, 1])
    words = rng.integers(0, VOCABULARY_SIZE, (n, 24))
    vectors = mixture.sample(start, n).tolist()
    items = []
    for j in range(n):
        i = start + j
        category = CATEGORIES[i % len(CATEGORIES)]
        text = f"Synthetic {category} note {i}: " + " ".join(f"w{w}" for w in words[j])
        doc = DocumentIn(
            id=f"syn-{i:08d}",
            title=f"Synthetic {category} note {i}",
            text=text,
            category=category,
            source=SOURCES[i % len(SOURCES)],
            url=f"https://example.org/synthetic/{i}",
        )
        items.append((doc, [text], [vectors[j]]))
    return items


def timing(table: Any, method: str, log: dict[str, float]) -> None:
    """Wrap `table.method` to add its wall time to log[method]: splits maintain() in parts."""
    original = getattr(table, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            log[method] = log.get(method, 0.0) + time.perf_counter() - started

    setattr(table, method, timed)


def build(size: int, root: Path, mixture: Mixture) -> dict[str, Any]:
    """The store of `size` chunks under root, built once (resumed if interrupted), indexed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    marker = root / "build.json"
    expected = {"size": size, "seed": mixture.seed, "centres": len(mixture.centres)}
    if marker.exists():
        built = json.loads(marker.read_text())
        if {k: built.get(k) for k in expected} == expected:
            print(f"reusing the {size:,}-chunk store in {root} (built earlier)")
            return built
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(root)
    done = store.documents.count_rows()
    if done:
        store.repair()  # chunks of a batch whose documents were never written
        done -= done % BATCH
        print(f"resuming the build at document {done:,}")
    upsert_s = 0.0
    columns = [*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn()]
    columns[1] = BarColumn(bar_width=30)
    with Progress(*columns) as progress:
        task = progress.add_task(f"upsert_many x{BATCH}", total=size, completed=done)
        for start in range(done, size, BATCH):
            items = synthetic_batch(mixture, start, min(BATCH, size - start))
            started = time.perf_counter()
            store.upsert_many(items)
            upsert_s += time.perf_counter() - started
            progress.update(task, advance=len(items))
    log: dict[str, float] = {}
    timing(store.chunks, "create_index", log)
    timing(store.chunks, "optimize", log)
    timing(store.documents, "optimize", log)
    print("maintain(): building the vector index and optimizing ...", flush=True)
    started = time.perf_counter()
    actions = store.maintain()
    maintain_s = time.perf_counter() - started
    built = {
        **expected,
        "upsert_s": upsert_s,
        "maintain_s": maintain_s,
        "index_s": log.get("create_index", 0.0),
        "optimize_s": maintain_s - log.get("create_index", 0.0),
        "maintain": actions,
        "stats": store.stats(),
        "disk_mb": sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20,
    }
    marker.write_text(json.dumps(built, indent=1))
    return built


def open_store(root: Path) -> KnowledgeStore:
    return KnowledgeStore(
        str(root / "lancedb"),
        embedding_model=MODEL_ID,
        dimensions=DIMENSIONS,
        vector_index=VectorIndexSpec(),
        chunk_layout=CHUNK_LAYOUT,
    )


# -- the query, as the store issues it -------------------------------------------------------


@dataclass(frozen=True)
class Tuning:
    """nprobes / refine_factor of a vector query; None leaves LanceDB's default."""

    nprobes: int | None
    refine_factor: int | None

    def __str__(self) -> str:
        n = self.nprobes or "default"
        r = self.refine_factor or "none"
        return f"nprobes={n} refine={r}"


LANCEDB_DEFAULT = Tuning(None, None)


def where_clause(filtered: bool) -> str | None:
    """The prefilter KnowledgeStore.search builds: the filters only (one model per table)."""
    return FILTER.where() if filtered else None


def lance_query(
    table: Any, vector: list[float], where: str | None, tuning: Tuning, limit: int = FETCH
) -> list[dict[str, Any]]:
    """The LanceDB call of KnowledgeStore.search(mode="vector"), with `tuning` applied."""
    query = table.search(vector, query_type="vector").metric("cosine")
    if tuning.nprobes:
        query = query.nprobes(tuning.nprobes)
    if tuning.refine_factor:
        query = query.refine_factor(tuning.refine_factor)
    if where:
        query = query.where(where, prefilter=True)
    return query.select([*COLUMNS, "_distance"]).limit(limit).to_list()


# -- quality ---------------------------------------------------------------------------------


@dataclass
class Quality:
    store_tuning: str = ""
    tuning: Tuning = LANCEDB_DEFAULT  # what the latency baseline applies: the store's own
    store_recall: float = 0.0
    store_recall_filtered: float = 0.0
    spec_recall: float = 0.0
    spec_recall_filtered: float = 0.0
    sweep: list[tuple[str, float, float, float]] = field(default_factory=list)


def exact_top_k(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, mask: np.ndarray | None
) -> list[list[str]]:
    """Brute force cosine (vectors are unit length, so dot) top-K ids per query."""
    out = []
    for start in range(0, len(queries), 50):
        scores = queries[start : start + 50] @ vectors.T
        if mask is not None:
            scores[:, ~mask] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        for row, cand in zip(scores, top, strict=True):
            out.append(list(ids[cand[np.argsort(-row[cand])]]))
    return out


def recall(found: Iterable[list[str]], truth: list[list[str]]) -> float:
    hits = [len(set(f[:K]) & set(t)) / K for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def near_data_queries(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Stored vectors plus noise (cosine ~0.93 to their source): queries where the data is."""
    rng = np.random.default_rng([seed, 7])
    picked = vectors[rng.choice(len(vectors), n, replace=False)]
    return normalise(picked + 0.02 * rng.standard_normal(picked.shape, dtype=np.float32))


def measure_quality(
    store: KnowledgeStore, queries: np.ndarray, truth: dict[bool, list[list[str]]], sweep: bool
) -> Quality:
    """Recall@10 of the store's search and of LanceDB queries at several tunings."""
    spec = store.vector_index
    spec_tuning = Tuning(spec.nprobes, spec.refine_factor)
    quality = Quality()

    def ann(tuning: Tuning, filtered: bool) -> list[list[dict[str, Any]]]:
        where = where_clause(filtered)
        return [lance_query(store.chunks, q.tolist(), where, tuning) for q in queries]

    def store_ids(filtered: bool) -> list[list[str]]:
        filters = FILTER if filtered else None
        return [
            [h.chunk_id for h in store.search(vector=q.tolist(), mode="vector", filters=filters)]
            for q in queries
        ]

    # Which tuning does store.search apply? The one whose results it reproduces exactly.
    by_store = store_ids(False)
    candidates = {
        spec_tuning: ann(spec_tuning, False),
        LANCEDB_DEFAULT: ann(LANCEDB_DEFAULT, False),
    }
    matches = [
        t for t, rows in candidates.items() if [[r["id"] for r in x[:K]] for x in rows] == by_store
    ]
    store_tuning = matches[0] if matches else None
    if len(matches) == 2:
        quality.store_tuning = "exact search (no vector index: tunings do not apply)"
    elif store_tuning:
        origin = "VectorIndexSpec" if store_tuning == spec_tuning else "LanceDB defaults"
        quality.store_tuning = f"{store_tuning} ({origin})"
    else:
        quality.store_tuning = "unknown (matches neither VectorIndexSpec nor LanceDB defaults)"
    quality.store_recall = recall(by_store, truth[False])
    quality.store_recall_filtered = recall(store_ids(True), truth[True])
    quality.spec_recall = recall(
        ([r["id"] for r in x] for x in candidates[spec_tuning]), truth[False]
    )
    quality.spec_recall_filtered = recall(
        ([r["id"] for r in x] for x in ann(spec_tuning, True)), truth[True]
    )
    if sweep:
        grid = [LANCEDB_DEFAULT] + [
            Tuning(n, r) for n in (10, 32, 64) for r in (None, 5, 10, 20, 50)
        ]
        for tuning in grid:
            for q in queries[:10]:  # warm-up
                lance_query(store.chunks, q.tolist(), where_clause(False), tuning)
            ms = []
            rows = []
            for q in queries:
                started = time.perf_counter()
                rows.append(lance_query(store.chunks, q.tolist(), where_clause(False), tuning))
                ms.append((time.perf_counter() - started) * 1000)
            p50, p95 = percentiles(ms)
            r = recall(([x["id"] for x in row] for row in rows), truth[False])
            quality.sweep.append((str(tuning), r, p50, p95))
            print(f"  sweep {tuning!s:28} recall@10 {r:.3f}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    quality.tuning = store_tuning or spec_tuning
    return quality


# -- latency: the raw process ----------------------------------------------------------------


def rss_mb(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def raw_worker() -> None:
    """The raw path in a process of its own (like the replica: no client, no numpy corpus).

    Commands on stdin, one JSON line each; answers on stdout. The store and the embedder load
    on first use, so the RSS after each first phase says what each part costs.
    """
    import lancedb

    setup = json.loads(sys.stdin.readline())
    tuning = Tuning(*setup["tuning"])
    vectors = np.load(setup["queries"]).tolist()
    texts = setup["texts"]
    table = lancedb.connect(setup["uri"]).open_table(setup["table"])
    state: dict[str, Any] = {}

    def store() -> KnowledgeStore:
        if "store" not in state:
            started = time.perf_counter()
            state["store"] = KnowledgeStore(
                setup["uri"],
                embedding_model=MODEL_ID,
                dimensions=DIMENSIONS,
                chunk_layout=CHUNK_LAYOUT,
                sole_writer=True,  # as the replica opens it (nothing writes during the run)
            )
            state["store_open_s"] = time.perf_counter() - started
        return state["store"]

    def embed(text: str) -> list[float]:
        if "embedder" not in state:
            from bigevy.knowledge.embedder import Embedder

            # One stream on every thread, as the knowledge replica encodes queries.
            spec = EmbedderSpec(num_threads=setup["embed_threads"], streams=1)
            state["embedder"] = Embedder(spec)
            assert state["embedder"].dimensions == DIMENSIONS
            state["embedder"].encode(texts[:8])
        return state["embedder"].encode([text])[0]

    def query(cmd: str, vector: list[float], text: str, filtered: bool) -> float | None:
        """One query of path `cmd`; returns the embedding time (ms) when it embeds."""
        embed_ms = None
        if cmd in ("raw", "raw_store"):
            started = time.perf_counter()
            vector = embed(text)
            embed_ms = (time.perf_counter() - started) * 1000
        if cmd in ("lancedb", "raw"):
            lance_query(table, vector, where_clause(filtered), tuning)
        else:
            store().search(vector=vector, mode="vector", filters=FILTER if filtered else None)
        return embed_ms

    warmed = set()
    for line in sys.stdin:
        request = json.loads(line)
        cmd, filtered = request["cmd"], request["filtered"]
        pairs = list(zip(vectors, texts, strict=True))
        if (cmd, filtered) not in warmed:  # first use also loads the store / the embedder
            warmed.add((cmd, filtered))
            for vector, text in pairs[:10]:
                query(cmd, vector, text, filtered)
        total, embed_ms = [], []
        for vector, text in pairs:
            started = time.perf_counter()
            embedded = query(cmd, vector, text, filtered)
            total.append((time.perf_counter() - started) * 1000)
            if embedded is not None:
                embed_ms.append(embedded)
        answer = {
            "ms": total,
            "embed_ms": embed_ms,
            "rss_mb": rss_mb(),
            "store_open_s": state.get("store_open_s"),
        }
        print(json.dumps(answer), flush=True)


class RawProcess:
    def __init__(
        self,
        uri: str,
        table: str,
        tuning: Tuning,
        queries_npy: Path,
        texts: list[str],
        embed_threads: int | None,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--raw-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        setup = {
            "uri": uri,
            "table": table,
            "tuning": [tuning.nprobes, tuning.refine_factor],
            "queries": str(queries_npy),
            "texts": texts,
            "embed_threads": embed_threads,
        }
        self.ask_line(setup)

    def ask_line(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def ask(self, cmd: str, filtered: bool = False) -> dict[str, Any]:
        self.ask_line({"cmd": cmd, "filtered": filtered})
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the raw worker died")
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- latency: Serve --------------------------------------------------------------------------


def admin_key(settings: Settings) -> str:
    """A new admin key in the app's metadata database (as tests/conftest.py makes one).

    Admin: its rate limit (50/s) is above what one sequential client sends.
    """
    from bigevy.fleet.roles import Role
    from bigevy.fleet.service import open_fleet

    fleet = open_fleet(settings)
    try:
        return fleet.create_key(Role.admin, "retrieval_scale benchmark").key
    finally:
        fleet.engine.dispose()


class LocalServe:
    """Ray + Serve in this process, as tests/conftest.py starts them, on a fresh local Ray.

    address="local": never attach to a Ray someone else started on this machine.
    """

    def __init__(self, settings: Settings) -> None:
        import httpx
        import ray
        from ray import serve

        from deployments.app import build_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = admin_key(settings)
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        target = serve.RunTarget(build_app(settings), name=settings.app_name, route_prefix="/")
        serve.run_many([target], wait_for_applications_running=False)
        self.base_url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(
            base_url=self.base_url, timeout=120, headers={"Authorization": f"Bearer {key}"}
        )
        started = time.monotonic()
        while True:
            try:
                if self.http.get("/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 900:
                raise SystemExit("bigEVY did not become ready in 900 s")
            time.sleep(0.5)
        self.ready_s = time.monotonic() - started

    def search(self, text: str, filtered: bool) -> float:
        body: dict[str, Any] = {"query": text, "mode": "vector", "top_k": K}
        if filtered:
            body["categories"] = FILTER.categories
        return self.timed("POST", "/v1/rag/search", body)

    def timed(self, method: str, path: str, body: dict[str, Any] | None = None) -> float:
        started = time.perf_counter()
        reply = self.http.request(method, path, json=body)
        ms = (time.perf_counter() - started) * 1000
        reply.raise_for_status()
        return ms

    def replica_rss_mb(self) -> dict[str, float]:
        """RSS of our replicas: processes under this one (our raylet's workers), by title.

        Found by process tree, not ray.util.state (that needs the dashboard, not started
        here), and never by name machine-wide: other Rays may run on the machine.
        """
        import psutil

        out = {}
        for proc in psutil.Process().children(recursive=True):
            try:
                cmdline = " ".join(proc.cmdline())
                for name in ("knowledge", "embedder"):
                    if f"ServeReplica:bigevy:{name}" in cmdline:
                        out[name] = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
        return out

    def close(self) -> None:
        import ray
        from ray import serve

        self.http.close()
        serve.shutdown()
        ray.shutdown()


# -- one size --------------------------------------------------------------------------------


@dataclass
class Result:
    size: int
    built: dict[str, Any]
    quality: Quality
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def query_texts(n: int) -> list[str]:
    texts = [f"{q} {t}?" for t in TOPICS for q in QUESTIONS]
    return [texts[i % len(texts)] for i in range(n)]


def measure_latency(
    result: Result,
    root: Path,
    table: str,
    tuning: Tuning,
    queries: np.ndarray,
    args: argparse.Namespace,
) -> None:
    texts = query_texts(len(queries))
    queries_npy = root / "queries.npy"
    np.save(queries_npy, queries.astype(np.float32))
    raw = RawProcess(str(root / "lancedb"), table, tuning, queries_npy, texts, args.embed_threads)
    serve = None
    if not args.skip_serve:
        settings = Settings(
            data_dir=root / "data",
            embedder=EmbedderSpec(num_threads=args.embed_threads),
            # Already maintained; a scheduled optimize mid-run would only add noise.
            knowledge=KnowledgeSpec(
                lancedb_uri=str(root / "lancedb"), maintenance_interval_s=86_400
            ),
        )
        print("starting Ray + Serve ...", flush=True)
        serve = LocalServe(settings)
        result.notes.append(f"Serve ready in {serve.ready_s:.0f} s")
        for text in texts[:20]:  # warm-up
            serve.search(text, False)
            serve.search(text, True)
    samples: dict[str, list[float]] = {}
    memory: dict[str, float] = {}
    for round_ in range(args.rounds):
        for filtered in (False, True):
            tag = "filtered" if filtered else "all"
            for cmd in ("lancedb", "store", "raw", "raw_store"):
                answer = raw.ask(cmd, filtered)
                samples.setdefault(f"{cmd}/{tag}", []).extend(answer["ms"])
                if answer["embed_ms"]:
                    samples.setdefault(f"embed/{tag}", []).extend(answer["embed_ms"])
                memory.setdefault(f"raw after {cmd}", answer["rss_mb"])
                if answer["store_open_s"]:
                    result.notes.append(f"raw store open + repair {answer['store_open_s']:.1f} s")
            if serve:
                samples.setdefault(f"serve/{tag}", []).extend(
                    serve.search(t, filtered) for t in texts
                )
        if serve:  # where Serve's time goes: the HTTP floor, and the embedding hop
            samples.setdefault("serve_floor/all", []).extend(
                serve.timed("GET", "/healthz") for _ in texts
            )
            samples.setdefault("serve_embed/all", []).extend(
                serve.timed("POST", "/v1/embeddings", {"input": t}) for t in texts
            )
        print(f"  latency round {round_ + 1}/{args.rounds} done", flush=True)
    result.latency = {name: percentiles(ms) for name, ms in samples.items()}
    memory["raw final"] = answer["rss_mb"]
    raw.close()
    if serve:
        for name, mb in serve.replica_rss_mb().items():
            memory[f"{name} replica"] = mb
        serve.close()
    result.memory = memory
    result.notes = list(dict.fromkeys(result.notes))


def run_size(size: int, args: argparse.Namespace) -> Result:
    root = Path(args.workdir) / str(size)
    mixture = Mixture(args.centres, args.seed)
    built = build(size, root, mixture)
    print(
        f"{size:,} chunks: upserts {built['upsert_s']:.0f} s, maintain {built['maintain_s']:.0f} s "
        f"(vector index {built['index_s']:.0f} s, optimize {built['optimize_s']:.0f} s), "
        f"{built['disk_mb']:.0f} MB on disk"
    )
    store = open_store(root)
    # A store built by earlier code gets what maintain() builds now (e.g. the documents.id index).
    print(f"maintain() on open: {store.maintain()}", flush=True)
    data = store.chunks.search().select(["id", "category", "vector"]).limit(None).to_arrow()
    ids = np.asarray(data["id"].to_pylist(), dtype=object)
    vectors = (
        data["vector"].combine_chunks().values.to_numpy().reshape(-1, DIMENSIONS).astype(np.float32)
    )
    in_filter = np.isin(np.asarray(data["category"].to_pylist()), FILTER.categories)
    del data
    queries = near_data_queries(vectors, args.queries, args.seed)
    truth = {
        False: exact_top_k(vectors, ids, queries, None),
        True: exact_top_k(vectors, ids, queries, in_filter),
    }
    del vectors, ids, in_filter
    print(f"recall: {len(queries)} queries near the data, exact top-{K} by numpy", flush=True)
    quality = measure_quality(store, queries, truth, args.sweep)
    tuning = quality.tuning
    result = Result(size, built, quality)
    print(
        f"store.search applies {quality.store_tuning}: recall@10 {quality.store_recall:.3f} "
        f"(filtered {quality.store_recall_filtered:.3f}); VectorIndexSpec tuning "
        f"{quality.spec_recall:.3f} (filtered {quality.spec_recall_filtered:.3f})",
        flush=True,
    )
    table = store.chunks.name  # one chunks table per embedding model
    del store
    if args.rounds:
        measure_latency(result, root, table, tuning, queries, args)
    report_size(result)
    return result


def report_size(result: Result) -> None:
    if not result.latency:
        return
    print(f"\n== {result.size:,} chunks ==")
    lat = result.latency
    for tag in ("all", "filtered"):
        print(f"-- {tag} ({where_clause(tag == 'filtered')})")
        rows = [
            ("LanceDB query (vector given)", "lancedb"),
            ("store.search (vector given)", "store"),
            ("embed only", "embed"),
            ("raw embed + LanceDB", "raw"),
            ("raw embed + store.search", "raw_store"),
            ("Serve /v1/rag/search", "serve"),
            ("Serve GET /healthz (floor)", "serve_floor"),
            ("Serve /v1/embeddings (1 text)", "serve_embed"),
        ]
        for label, key in rows:
            if f"{key}/{tag}" in lat:
                p50, p95 = lat[f"{key}/{tag}"]
                print(f"   {label:30} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
        if f"serve/{tag}" in lat:
            s, r, rs = lat[f"serve/{tag}"], lat[f"raw/{tag}"], lat[f"raw_store/{tag}"]
            print(
                f"   ratio Serve / (embed + LanceDB): p50 {s[0] / r[0]:.2f}x, p95 "
                f"{s[1] / r[1]:.2f}x (goal <= 1.3); Serve / (embed + store.search): "
                f"p50 {s[0] / rs[0]:.2f}x"
            )
    print("-- memory (RSS MB): " + ", ".join(f"{k} {v:.0f}" for k, v in result.memory.items()))
    for note in result.notes:
        print(f"-- {note}")


def summary(results: list[Result]) -> None:
    print("\n== summary: latency p50/p95 ms, sequential, one client, unfiltered ==")
    columns = [
        ("size", 9),
        ("upserts s", 9),
        ("index s", 7),
        ("recall@10", 9),
        ("LanceDB", 11),
        ("emb+LanceDB", 11),
        ("emb+store", 11),
        ("Serve", 11),
        ("ratio", 5),
        ("RSS replica", 11),
        ("RSS raw", 7),
    ]
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    for r in results:

        def pair(key: str, r: Result = r) -> str:
            p = r.latency.get(key)
            return f"{p[0]:.0f}/{p[1]:.0f}" if p else "-"

        def mb(key: str, r: Result = r) -> str:
            value = r.memory.get(key)
            return f"{value:.0f} MB" if value else "-"

        serve, raw = r.latency.get("serve/all"), r.latency.get("raw/all")
        cells = [
            f"{r.size:,}",
            f"{r.built['upsert_s']:.0f}",
            f"{r.built['index_s']:.0f}",
            f"{r.quality.store_recall:.3f}",
            pair("lancedb/all"),
            pair("raw/all"),
            pair("raw_store/all"),
            pair("serve/all"),
            f"{serve[0] / raw[0]:.2f}" if serve and raw else "-",
            mb("knowledge replica"),
            mb("raw after store"),
        ]
        print(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, columns, strict=True)))
    print(
        "recall@10: store.search as it runs now. ratio: Serve p50 / (embed + LanceDB) p50, goal "
        "<= 1.3. RSS raw: the raw process with the store open and queried, before the embedder "
        "loads (the knowledge replica holds no model either)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="chunks, comma-separated")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "bigevy-scale"))
    parser.add_argument(
        "--rounds", type=int, default=3, help="latency rounds, paths alternate (0: recall only)"
    )
    parser.add_argument("--centres", type=int, default=2000, help="mixture components")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--embed-threads",
        type=int,
        default=None,
        help="torch threads of the embedder, raw and Serve alike (default: all cores)",
    )
    parser.add_argument("--skip-serve", action="store_true", help="raw paths only (quick)")
    parser.add_argument(
        "--sweep", action=argparse.BooleanOptionalAction, default=True, help="nprobes x refine"
    )
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        return raw_worker()
    results = [run_size(int(s), args) for s in args.sizes.split(",")]
    summary(results)


if __name__ == "__main__":
    main()
