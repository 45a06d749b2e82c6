"""Embedding throughput: `POST /v1/embeddings` through Serve (many concurrent clients, one
text or a list per request, batched across requests by `@serve.batch`) vs. raw
`SentenceTransformer.encode` in a process of its own, batched (batch_size=32) and one text at
a time.

    .venv/bin/python benchmarks/embedding_throughput.py [--texts 2048] [--per-request 1 16]
        [--corpus scifact|sms]

Goals (issue 3): Serve >= 0.85x raw batched; Serve >= 4x raw one-at-a-time. Raw is float32,
as sentence-transformers loads a model by default; where the app embeds in bfloat16 (AMX
hosts), raw batched is measured in bfloat16 too, which tells Serve's own cost. Texts are
SciFact abstracts' first 400 characters from ../shared/data/scifact when present (the size of
the chunks bigEVY embeds), or with `--corpus sms` the labelled SMS of
benchmarks/data/triage_messages.jsonl, repeated (the size of the questions it embeds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve

from bigevy.config import RateLimit, Settings

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"
SMS = Path(__file__).resolve().parent / "data" / "triage_messages.jsonl"


def load_texts(n: int, corpus: str) -> list[str]:
    if corpus == "sms":
        with SMS.open() as f:
            messages = [json.loads(line)["text"] for line in f if line.strip()]
        return [messages[i % len(messages)] for i in range(n)]
    texts: list[str] = []
    if SCIFACT.exists():
        with SCIFACT.open() as f:
            for line in f:
                text = json.loads(line)["text"]
                texts.append(text[:400])
                if len(texts) == n:
                    return texts
    while len(texts) < n:
        texts.append(f"Flood safety note {len(texts)}: move to higher ground and avoid water.")
    return texts


def raw_worker() -> None:
    """Raw sentence-transformers in a clean process: texts on stdin, texts/s on stdout.

    float32 as its users get it by default, batched and one at a time; and batched in the
    precision the app's embedder runs in, when that differs (bfloat16 on AMX hosts)."""
    from raw_model import raw_sentence_transformer, served_dtype

    request = json.loads(sys.stdin.read())
    texts = request["texts"]

    def batched(model: Any) -> float:
        model.encode(texts[:64], batch_size=32)  # warm-up
        started = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True)
        return len(texts) / (time.perf_counter() - started)

    model = raw_sentence_transformer()
    result = {"batched": batched(model)}
    single = texts[: request["single"]]
    started = time.perf_counter()
    for text in single:
        model.encode([text], normalize_embeddings=True)
    result["one_at_a_time"] = len(single) / (time.perf_counter() - started)
    dtype = served_dtype()
    result["served_dtype"] = dtype
    result["batched_served_dtype"] = (
        result["batched"] if dtype == "float32" else batched(raw_sentence_transformer(dtype))
    )
    print(json.dumps(result))


async def serve_throughput(
    base_url: str, texts: list[str], clients: int, per_request: int
) -> float:
    """Texts/s with `clients` concurrent clients, each request carrying `per_request` texts
    (1: a string `input`; more: a list, as bulk clients of OpenAI's API send them)."""
    queue = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            batch = queue.pop()
            # base64 vectors: what the official openai client asks for unless told otherwise.
            body = {"input": batch[0] if per_request == 1 else batch, "encoding_format": "base64"}
            reply = await http.post(f"{base_url}/v1/embeddings", json=body)
            reply.raise_for_status()
            assert len(reply.json()["data"]) == len(batch)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=HEADERS) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--single", type=int, default=256, help="texts for one-at-a-time")
    parser.add_argument(
        "--per-request", type=int, nargs="+", default=[1, 16], help="texts per HTTP request"
    )
    parser.add_argument("--corpus", choices=["scifact", "sms"], default="scifact")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        return raw_worker()

    texts = load_texts(args.texts, args.corpus)
    raw = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--raw-worker"],
            input=json.dumps({"texts": texts, "single": args.single}),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    settings = Settings(data_dir=tempfile.mkdtemp(prefix="bigevy-bench-"))
    # The benchmark's admin key may go faster than an admin's default 50 requests/s: a
    # throughput run measures the embedder, not the rate limit.
    unlimited = RateLimit(per_second=1e6, burst=1_000_000)
    settings.fleet.rate_limits = {**settings.fleet.rate_limits, "admin": unlimited}
    base_url = start_serve(settings)
    asyncio.run(serve_throughput(base_url, texts[:64], args.clients, 1))  # warm-up
    dtype = raw["served_dtype"]
    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"{len(texts)} texts ({args.corpus}, {mean_chars:.0f} characters on average), "
        f"{args.clients} concurrent clients; the app embeds in {dtype}"
    )
    print(f"raw encode(batch_size=32), float32: {raw['batched']:8.1f} texts/s")
    print(f"raw one at a time, float32:         {raw['one_at_a_time']:8.1f} texts/s")
    if dtype != "float32":
        print(f"raw encode(batch_size=32), {dtype}: {raw['batched_served_dtype']:8.1f} texts/s")
    for per_request in args.per_request:
        served = asyncio.run(serve_throughput(base_url, texts, args.clients, per_request))
        print(f"Serve /v1/embeddings, {per_request:3d} text(s) per request: {served:8.1f} texts/s")
        print(f"  ratio Serve/raw batched: {served / raw['batched']:.3f}  (goal >= 0.85)")
        if dtype != "float32":
            same = served / raw["batched_served_dtype"]
            print(f"  ratio Serve/raw batched in {dtype}: {same:.3f}  (Serve's own cost)")
        print(f"  ratio Serve/raw one-at-a-time: {served / raw['one_at_a_time']:.2f}  (goal >= 4)")


if __name__ == "__main__":
    main()
