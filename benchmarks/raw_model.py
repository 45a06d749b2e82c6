"""The honest baseline of every embedding benchmark: sentence-transformers as its users call
it, in one process, torch on every core, none of bigEVY's code in between."""

from __future__ import annotations

import os
from typing import Any

from bigevy.config import Settings
from bigevy.model_files import resolve_source


def raw_sentence_transformer() -> Any:
    """The packaged embedding model, loaded as `SentenceTransformer(path)` with torch on every
    core (whatever the served replicas are configured to use)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(os.cpu_count() or 1)
    return SentenceTransformer(str(resolve_source(Settings().embedder.source)), device="cpu")
