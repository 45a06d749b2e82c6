"""Text embeddings with sentence-transformers: the vector space of the knowledge base."""

from __future__ import annotations

import os

import numpy as np

from bigevy.config import EmbedderSpec
from bigevy.model_files import resolve_source


class Embedder:
    """One loaded sentence-transformers model. Vectors are L2-normalised (cosine = dot)."""

    def __init__(self, spec: EmbedderSpec) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        # Ray sets OMP_NUM_THREADS to the replica's num_cpus (often a fraction, so 1 thread);
        # torch would then use one core however many the host has.
        torch.set_num_threads(spec.num_threads or os.cpu_count() or 1)
        self.spec = spec
        self.model = SentenceTransformer(str(resolve_source(spec.source)), device="cpu")
        self.dimensions = int(self.model.get_embedding_dimension())

    @property
    def model_id(self) -> str:
        return self.spec.id

    def encode_array(self, texts: list[str]) -> np.ndarray:
        """float32 rows: what crosses process boundaries (Ray ships arrays without pickling
        each float)."""
        return self.model.encode(
            texts,
            batch_size=self.spec.max_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def encode(self, texts: list[str]) -> list[list[float]]:
        return self.encode_array(texts).tolist()

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads (after truncation to its maximum sequence length)."""
        limit = self.model.max_seq_length
        return sum(min(len(ids), limit) for ids in self.model.tokenizer(texts)["input_ids"])
