"""Text embeddings with sentence-transformers: the vector space of the knowledge base."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from bigevy.config import EmbedderSpec
from bigevy.model_files import resolve_source


class Embedder:
    """One loaded sentence-transformers model. Vectors are L2-normalised (cosine = dot).

    torch runs on `streams` threads of its own, each encoding a batch of its own on
    `num_threads / streams` cores. With one stream on both cores, torch's threads wait for each
    other at every operator, so a neighbour that preempts one of them stalls both: beside a
    process taking a quarter of this 2-core host, one 2-thread stream encoded 40 chunks/s and
    two 1-thread streams 51 (61 and 60 on the idle host; benchmarks/RESULTS.md). One stream
    with every thread is still the faster way to encode a single text (6.5 vs 8.8 ms for a
    query), so the query encoder keeps `streams=1`.
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
        self.model = SentenceTransformer(str(resolve_source(spec.source)), device="cpu")
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
        return self.model.encode(
            texts,
            batch_size=self.spec.max_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

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
        """Tokens the model reads (after truncation to its maximum sequence length)."""
        limit = self.model.max_seq_length
        return sum(min(len(ids), limit) for ids in self.model.tokenizer(texts)["input_ids"])
