"""Text embeddings with sentence-transformers: the vector space of the knowledge base."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from bigevy.config import EmbedderSpec
from bigevy.ops.model_files import resolve_source


class Embedder:
    """One loaded sentence-transformers model. Vectors are L2-normalised (cosine = dot).

    torch runs on `streams` threads of its own, each encoding a batch of its own on
    `num_threads / streams` cores. With one stream on both cores, torch's threads wait for each
    other at every operator, so a neighbour that preempts one of them stalls both: beside a
    process taking a quarter of this 2-core host, one 2-thread stream encoded 40 chunks/s and
    two 1-thread streams 51 (61 and 60 on the idle host; benchmarks/RESULTS.md). One stream
    with every thread is still the faster way to encode a single text (6.5 vs 8.8 ms for a
    query), so the query encoder keeps `streams=1`.

    On a CPU with AMX the model runs in bfloat16 (`dtype: auto`): 161-175 against 56 chunks/s
    in float32 on this project's AMX host, the same 5.5 ms for one query, cosine to the
    float32 vectors >= 0.998. Vectors are normalised again in float32 either way.
    """

    def __init__(self, spec: EmbedderSpec) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        # Ray sets OMP_NUM_THREADS to the replica's num_cpus (often a fraction, so 1 thread);
        # torch would then use one core however many the host has.
        threads = spec.num_threads or os.cpu_count() or 1
        self.streams = min(spec.streams or threads, threads)
        per_stream = threads // self.streams
        torch.set_num_threads(per_stream)
        self.spec = spec
        self.dtype = spec.dtype if spec.dtype != "auto" else fastest_dtype()
        self.model = SentenceTransformer(
            str(resolve_source(spec.source)),
            device="cpu",
            model_kwargs={"dtype": getattr(torch, self.dtype)},
        )
        self.dimensions = int(self.model.get_embedding_dimension())
        # Each thread that calls torch gets an OpenMP team of its own, sized by that thread's
        # setting: only these threads ever call the model.
        self._torch = ThreadPoolExecutor(
            self.streams,
            thread_name_prefix="torch",
            initializer=torch.set_num_threads,
            initargs=(per_stream,),
        )

    @property
    def model_id(self) -> str:
        return self.spec.id

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.spec.max_batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, np.float32(1e-12))

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        """Encode `texts` on the next free stream (one batch, one stream)."""
        return self._torch.submit(self._encode, texts)

    def encode_array(self, texts: list[str]) -> np.ndarray:
        """float32 rows, in order, with `texts` shared out over every stream: what crosses
        process boundaries (Ray ships arrays without pickling each float)."""
        if len(texts) < 2 * self.streams:
            return self.submit(texts).result()
        # Longest first, dealt in turn: each stream gets texts of every length, so they finish
        # together (sentence-transformers sorts by length only within a call).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        shares = [order[s :: self.streams] for s in range(self.streams)]
        parts = [self.submit([texts[i] for i in share]) for share in shares]
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for share, part in zip(shares, parts, strict=True):
            vectors[share] = part.result()
        return vectors

    def encode(self, texts: list[str]) -> list[list[float]]:
        return self.encode_array(texts).tolist()

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads (after truncation to its maximum sequence length).

        Tokenized exactly as `encode` tokenizes: the fast tokenizer keeps its truncation
        settings as state, and a call with other settings switched truncation off under a
        stream encoding a long text (the model then got 1026 positions of its 512)."""
        return int(self.model.preprocess(texts)["attention_mask"].sum())


def fastest_dtype() -> str:
    """bfloat16 where the CPU has AMX's bfloat16 unit (Intel Sapphire Rapids and later, as
    Linux lists its flags); float32 elsewhere, where bfloat16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            amx = any(line.startswith("flags") and "amx_bf16" in line.split() for line in cpuinfo)
    except OSError:
        amx = False
    return "bfloat16" if amx else "float32"
