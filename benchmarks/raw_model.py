"""The honest baseline of every embedding benchmark: sentence-transformers as its users call
it, in one process, torch on every core, none of bigEVY's code in between."""

from __future__ import annotations

import os
from typing import Any

from bigevy.config import Settings
from bigevy.knowledge.embedder import fastest_dtype


def served_dtype() -> str:
    """The precision the app's embedder runs in (its `dtype`, `auto` resolved as it does)."""
    dtype = Settings().embedder.dtype
    return fastest_dtype() if dtype == "auto" else dtype


def raw_sentence_transformer(dtype: str = "float32") -> Any:
    """The packaged embedding model, loaded as `SentenceTransformer(path)` with torch on every
    core (whatever the served replicas are configured to use); float32 is what its users get
    by default."""
    import torch
    from sentence_transformers import SentenceTransformer

    from bigevy.ops.model_files import resolve_source

    torch.set_num_threads(os.cpu_count() or 1)
    return SentenceTransformer(
        str(resolve_source(Settings().embedder.source)),
        device="cpu",
        model_kwargs={"dtype": getattr(torch, dtype)},
    )
