"""The OpenAI-compatible API: a real Serve app, the real SmolLM2, the official `openai` client."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import openai
import pytest

from tests.support.cluster import API, DEFAULT_MODEL, wait_for

QUESTION = [{"role": "user", "content": "What should I do if a person is bleeding badly?"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=API.key, max_retries=0)


def test_chat_completion_answers_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=QUESTION, max_tokens=40, temperature=0
    )
    choice = reply.choices[0]
    assert len(choice.message.content.split()) >= 3
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= 40
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == DEFAULT_MODEL


def test_greedy_answers_repeat_exactly(client: openai.OpenAI) -> None:
    def ask() -> str:
        reply = client.chat.completions.create(
            messages=QUESTION, max_tokens=24, temperature=0, model=DEFAULT_MODEL
        )
        return reply.choices[0].message.content

    assert ask() == ask()


def test_streaming_chat_matches_the_non_streamed_answer(client: openai.OpenAI) -> None:
    kwargs = {"model": DEFAULT_MODEL, "messages": QUESTION, "max_tokens": 24, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    stream = client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1


def test_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    kwargs = {
        "model": DEFAULT_MODEL,
        "prompt": "Water is safe to drink after you",
        "max_tokens": 16,
        "temperature": 0,
    }
    whole = client.completions.create(**kwargs)
    assert whole.choices[0].text.strip()
    assert whole.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].text for c in client.completions.create(**kwargs, stream=True))
    assert streamed == whole.choices[0].text


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    listed = {m.id: m for m in client.models.list().data}
    assert listed[DEFAULT_MODEL].kind == "chat"
    model = client.models.retrieve(DEFAULT_MODEL)
    assert model.id == DEFAULT_MODEL and model.context_length == 2048
    # The embedding model is listed too, so a client can discover the id /v1/embeddings takes.
    (embedder,) = [m for m in listed.values() if m.kind == "embedding"]
    assert client.models.retrieve(embedder.id).context_length == 256  # all-MiniLM-L6-v2's
    assert len(client.embeddings.create(model=embedder.id, input="hi").data) == 1
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.code == "model_not_found"


def test_model_defaults_when_request_names_none(base_url: str) -> None:
    body = {"messages": QUESTION, "max_tokens": 4}
    reply = API.post(f"{base_url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json()["model"] == DEFAULT_MODEL


def test_profiles_change_the_prompt_and_unknown_lists_valid(client: openai.OpenAI) -> None:
    def prompt_tokens(profile: str) -> int:
        reply = client.chat.completions.create(
            model=DEFAULT_MODEL, messages=QUESTION, max_tokens=1, extra_body={"profile": profile}
        )
        return reply.usage.prompt_tokens

    counts = {
        p: prompt_tokens(p) for p in ("general", "technical", "educational", "analytical", "sms")
    }
    assert len(set(counts.values())) == 5, counts
    with pytest.raises(openai.BadRequestError) as err:
        prompt_tokens("poetry")
    message = str(err.value)
    assert all(p in message for p in counts)


@pytest.mark.parametrize("max_tokens", [0, 2049, 5000])
def test_max_tokens_outside_1_to_2048_is_400(client: openai.OpenAI, max_tokens: int) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=QUESTION, max_tokens=max_tokens
        )
    assert err.value.body["param"] == "max_tokens"


def test_prompt_longer_than_context_is_400(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "flood warning " * 1500}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=long, max_tokens=8)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:  # fits, but not with the completion
        client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": "flood " * 1000}],
            max_tokens=2048,
        )
    assert err.value.code == "context_length_exceeded"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-17", messages=QUESTION)
    assert err.value.code == "model_not_found"
    assert DEFAULT_MODEL in str(err.value)  # tells the caller what exists


def test_empty_messages_is_422_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=[])
    assert err.value.body["param"] == "messages"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "x", "messages": [', None),
        (b'{"model": "smollm2-135m-instruct"}', "messages"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', "messages.0.role"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 9}', "temperature"),
        (b"[1, 2, 3]", None),
    ],
)
def test_malformed_bodies_are_422_in_openai_shape(base_url: str, body: bytes, param: str) -> None:
    reply = API.post(
        f"{base_url}/v1/chat/completions",
        content=body,
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_unknown_route_is_404_in_the_same_shape(base_url: str) -> None:
    reply = API.get(f"{base_url}/v1/nothing-here", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"]["message"]


def test_health_readiness_and_model_status(client: openai.OpenAI, base_url: str) -> None:
    client.chat.completions.create(model=DEFAULT_MODEL, messages=QUESTION, max_tokens=8)
    assert API.get(f"{base_url}/healthz").json() == {"alive": True}
    ready = API.get(f"{base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"] == {DEFAULT_MODEL: "ready"}
    # Anyone may ask, so a burst is answered from one reading, not one each.
    burst = [httpx.get(f"{base_url}/readyz", timeout=10).json() for _ in range(20)]
    assert len({r["checked_at"] for r in burst}) < len(burst) / 2
    status = API.get(f"{base_url}/v1/admin/models").json()["data"][0]
    assert status["state"] == "ready" and status["replicas"] == {"RUNNING": 1}
    assert status["tokens_generated"] > 0 and status["tokens_per_second"] > 0
    assert status["memory_bytes"] > 50 * 2**20 and status["context_length"] == 2048


def test_client_disconnect_stops_the_generation(base_url: str) -> None:
    def model_status() -> dict:
        return API.get(f"{base_url}/v1/admin/models", timeout=10).json()["data"][0]

    before = model_status()
    body = {
        "model": DEFAULT_MODEL,
        "prompt": "1, 2, 3, 4, 5, 6, 7,",
        "max_tokens": 2000,
        "repetition_penalty": 1.0,  # let it count on: the default penalty can end it early
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{base_url}/v1/completions", json=body, timeout=60, headers=API.headers
    ) as reply:
        assert reply.status_code == 200
        lines = reply.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert all(line.startswith("data: ") or not line for line in received)
    wait_for(lambda: model_status()["cancelled"] > before["cancelled"], 30, "the cancellation")
    after = model_status()
    assert after["active"] == 0
    assert after["tokens_generated"] - before["tokens_generated"] < 1000  # far from the 2000 asked
    reply = API.post(
        f"{base_url}/v1/completions",
        timeout=30,
        json={"prompt": "Hello", "max_tokens": 4, "model": DEFAULT_MODEL},
    )
    assert reply.status_code == 200


def test_embeddings_with_the_openai_client(client: openai.OpenAI) -> None:
    texts = [
        "How do I purify drinking water?",
        "Boil water for one minute to make it safe.",
        "The football match ended in a draw.",
    ]
    reply = client.embeddings.create(model="all-minilm-l6-v2", input=texts)  # base64 on the wire
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # related texts are closer
    assert reply.usage.prompt_tokens > 10 and reply.model == "all-minilm-l6-v2"
    # The same request as plain floats decodes to the same vectors. (The same request: in
    # bfloat16 a text's vector moves by ~1e-3 with the padding of the batch it rides in.)
    as_floats = client.embeddings.create(
        model="all-minilm-l6-v2", input=texts, encoding_format="float"
    )
    assert np.allclose([d.embedding for d in as_floats.data], vectors, atol=1e-5)


def test_embedding_requests_are_batched_across_callers(base_url: str) -> None:
    async def many() -> list[list[float]]:
        async with httpx.AsyncClient(timeout=60, headers=API.headers) as http:
            replies = await asyncio.gather(
                *(
                    http.post(f"{base_url}/v1/embeddings", json={"input": f"question number {i}"})
                    for i in range(40)
                )
            )
        assert all(r.status_code == 200 for r in replies)
        return [r.json()["data"][0]["embedding"] for r in replies]

    vectors = asyncio.run(many())
    assert len({tuple(v) for v in vectors}) == 40  # each caller got its own text's vector


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 422, "input"),
        ({"input": []}, 422, "input"),
        ({"input": [1, 2, 3]}, 422, "input"),
        ({"input": "x", "model": "text-embedding-3-large"}, 404, "model"),
        ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ],
)
def test_bad_embedding_requests(base_url: str, body: dict, status: int, param: str) -> None:
    reply = API.post(f"{base_url}/v1/embeddings", json=body, timeout=30)
    assert reply.status_code == status
    assert reply.json()["error"]["param"] == param
