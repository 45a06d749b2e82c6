"""The embedder's torch streams: a list shared out over them comes back whole and in order,
with the vectors one stream makes, while other callers tokenize and encode beside it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder

TEXTS = [
    f"Note {i}: " + " ".join(["boil drinking water for one minute"] * (1 + i % 13))
    for i in range(70)
]


@pytest.fixture(scope="module")
def two_streams() -> Embedder:
    return Embedder(EmbedderSpec(num_threads=2, streams=2))


def test_texts_shared_over_streams_come_back_in_order(two_streams: Embedder) -> None:
    one_stream = Embedder(EmbedderSpec(num_threads=2, streams=1))
    assert (two_streams.streams, one_stream.streams) == (2, 1)
    together = two_streams.encode_array(TEXTS)
    alone = one_stream.encode_array(TEXTS)
    assert together.shape == (len(TEXTS), two_streams.dimensions)
    assert together.dtype == np.float32
    # Row i is text i's vector: the same as one stream makes (to float rounding) and closer
    # to it than to any other text's.
    similarity = together @ alone.T
    assert np.allclose(np.diag(similarity), 1.0, atol=1e-4)
    assert (similarity.argmax(axis=1) == np.arange(len(TEXTS))).all()


def test_tokens_are_counted_while_streams_encode(two_streams: Embedder) -> None:
    limit = two_streams.model.max_seq_length
    long_text = "water " * (4 * limit)
    texts = [*TEXTS, long_text] * 3
    expected = two_streams.encode_array(texts)
    with ThreadPoolExecutor(4) as pool:
        encodes = [pool.submit(two_streams.encode_array, texts) for _ in range(3)]
        counts = [
            pool.submit(two_streams.count_tokens, [long_text, "boil water"]) for _ in range(20)
        ]
        # A long text counts what the model reads: truncated to its sequence length.
        assert {c.result() for c in counts} == {limit + two_streams.count_tokens(["boil water"])}
        for encoded in encodes:
            assert np.allclose(encoded.result(), expected, atol=1e-5)


def test_bfloat16_vectors_are_unit_float32_and_close_to_float32_ones() -> None:
    """Either precision gives the same vector space (what `dtype: auto` may pick per host)."""
    texts = TEXTS[:12]
    exact = Embedder(EmbedderSpec(dtype="float32")).encode_array(texts)
    fast = Embedder(EmbedderSpec(dtype="bfloat16"))
    assert fast.dtype == "bfloat16"
    vectors = fast.encode_array(texts)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (np.sum(vectors * exact, axis=1) > 0.99).all()
    assert Embedder(EmbedderSpec()).dtype in ("float32", "bfloat16")
