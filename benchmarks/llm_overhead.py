"""What does serving through Ray Serve cost? Same model, prompts and max_tokens, greedy:
tokens/s and time-to-first-token streamed over the Serve HTTP route vs. raw llama-cpp-python
in-process, measured alternately in the same run.

    .venv/bin/python benchmarks/llm_overhead.py [--rounds 3] [--max-tokens 128]

Goals (issue 2): Serve >= 0.95x raw tokens/s; median TTFT overhead <= 50 ms.

The Serve side keeps one HTTP connection open, as OpenAI's client does. The raw baseline
runs in a subprocess of its own, not in this (client) process: a second
llama.cpp with its OpenMP threads in the client process measurably slowed the Serve replica.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve

from bigevy.config import Settings
from bigevy.serving.llamacpp import default_threads, model_params, resolve_model_path

SYSTEM = "You are EVY, a helpful assistant. Answer clearly."
QUESTIONS = [
    "How do I make river water safe to drink?",
    "What are the signs of dehydration in a child?",
    "What should I do during a flood?",
    "How do I treat a small burn?",
    "Why do plants need sunlight?",
    "How can I keep food fresh without a fridge?",
    "What is malaria and how does it spread?",
    "How do I prepare for a cyclone?",
]


@dataclass
class Run:
    ttft: float
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


class Raw:
    """The baseline: the same GGUF, context, threads and chat template, in this process."""

    def __init__(self, settings: Settings) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        spec = settings.models[0]
        self.repeat_penalty = spec.sampling.repeat_penalty  # the same sampling as the replica
        # Loaded as the replica loads it: without llama.cpp's extra buffer types, whose AMX
        # one crashes on AMX hosts (bigevy/serving/llamacpp.py).
        with model_params(use_extra_bufts=False):
            self.llm = Llama(
                model_path=str(resolve_model_path(spec.source)),
                n_ctx=spec.context_length,
                n_threads=spec.n_threads or default_threads(),
                verbose=False,
            )
        self.format = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=self.llm.detokenize([self.llm.token_eos()], special=True).decode(),
            bos_token=self.llm.detokenize([self.llm.token_bos()], special=True).decode(),
        )

    def run(self, question: str, max_tokens: int) -> Run:
        from llama_cpp import StoppingCriteriaList

        formatted = self.format(messages=messages(question))
        prompt = self.llm.tokenize(formatted.prompt.encode(), special=True)
        generated = 0

        def count(ids: Any, _logits: Any) -> bool:
            """Tokens counted as the replica counts them (usage.completion_tokens)."""
            nonlocal generated
            generated = len(ids) - len(prompt)
            return False

        started = time.perf_counter()
        first = None
        for chunk in self.llm.create_completion(
            prompt,
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=self.repeat_penalty,
            stream=True,
            stop=formatted.stop,
            stopping_criteria=StoppingCriteriaList([count]),
        ):
            if first is None and chunk["choices"][0]["text"]:
                first = time.perf_counter()
        end = time.perf_counter()
        return Run(ttft=(first or end) - started, tokens=generated, seconds=end - started)


def raw_round(settings: Settings, max_tokens: int) -> list[Run]:
    """One pass over QUESTIONS with raw llama-cpp-python, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--raw-worker", "--max-tokens", str(max_tokens)],
        input=settings.model_dump_json(),
        capture_output=True,
        text=True,
        check=True,
    )
    return [Run(**r) for r in json.loads(out.stdout)]


def raw_worker(max_tokens: int) -> None:
    settings = Settings.model_validate_json(sys.stdin.read())
    raw = Raw(settings)
    raw.run(QUESTIONS[0], 8)  # warm-up
    print(json.dumps([asdict(raw.run(q, max_tokens)) for q in QUESTIONS]))


def serve_run(
    client: httpx.Client, base_url: str, model: str, question: str, max_tokens: int
) -> Run:
    body = {
        "model": model,
        "messages": messages(question),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = None
    tokens = 0
    url = f"{base_url}/v1/chat/completions"
    with client.stream("POST", url, json=body, timeout=120, headers=HEADERS) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
    end = time.perf_counter()
    return Run(ttft=(first or end) - started, tokens=tokens, seconds=end - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (both).")
    parser.add_argument("--stream-interval-ms", type=int, default=None)
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        return raw_worker(args.max_tokens)

    settings = Settings(data_dir=tempfile.mkdtemp(prefix="bigevy-bench-"))
    spec = settings.models[0]
    if args.threads:
        spec.n_threads = args.threads
    if args.stream_interval_ms is not None:
        spec.stream_interval_ms = args.stream_interval_ms
    model = settings.models[0].id
    base_url = start_serve(settings)
    # One client with a kept-alive connection, as OpenAI's client keeps one: a fresh
    # `httpx.Client` per request spent ~20 ms building its TLS context before sending.
    client = httpx.Client()
    serve_run(client, base_url, model, QUESTIONS[0], 8)  # warm-up

    raw_runs: list[Run] = []
    serve_runs: list[Run] = []
    for _ in range(args.rounds):  # rounds alternate, so drift in machine load hits both alike
        raw_runs += raw_round(settings, args.max_tokens)
        serve_runs += [serve_run(client, base_url, model, q, args.max_tokens) for q in QUESTIONS]

    def tps(runs: list[Run]) -> float:
        return sum(r.tokens for r in runs) / sum(r.seconds for r in runs)

    raw_tps, serve_tps = tps(raw_runs), tps(serve_runs)
    raw_ttft = statistics.median(r.ttft for r in raw_runs) * 1000
    serve_ttft = statistics.median(r.ttft for r in serve_runs) * 1000
    overheads = [(s.ttft - r.ttft) * 1000 for r, s in zip(raw_runs, serve_runs, strict=True)]
    print(
        f"model {model}, {len(raw_runs)} requests each, max_tokens {args.max_tokens}, greedy, "
        f"{spec.n_threads or default_threads()} llama.cpp threads, "
        f"stream interval {spec.stream_interval_ms} ms"
    )
    print(f"{'':24}{'raw llama.cpp':>16}{'Serve HTTP':>16}")
    print(
        f"{'tokens generated':24}{sum(r.tokens for r in raw_runs):>16}"
        f"{sum(r.tokens for r in serve_runs):>16}"
    )
    print(f"{'tokens/s':24}{raw_tps:>16.1f}{serve_tps:>16.1f}")
    print(f"{'median TTFT (ms)':24}{raw_ttft:>16.1f}{serve_ttft:>16.1f}")
    print(f"ratio Serve/raw tokens/s: {serve_tps / raw_tps:.3f}  (goal >= 0.95)")
    print(f"median TTFT overhead: {statistics.median(overheads):.1f} ms  (goal <= 50 ms)")


if __name__ == "__main__":
    main()
