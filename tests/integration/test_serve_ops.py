"""Operating the Serve app: back-pressure, readiness with a model that cannot load, redeploys."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from bigevy.config import (
    DEFAULT_MODEL_SOURCE,
    DeploymentSpec,
    EmbedderSpec,
    ModelSpec,
    SamplingDefaults,
    Settings,
)
from tests.support.cluster import API, DEFAULT_MODEL, ServeCluster, wait_for


def one_slot_model() -> ModelSpec:
    """The default model on one replica that holds one request and queues one more."""
    return ModelSpec(
        id=DEFAULT_MODEL,
        source=DEFAULT_MODEL_SOURCE,
        deployment=DeploymentSpec(num_replicas=1, max_ongoing_requests=1, max_queued_requests=1),
    )


def broken_model(tmp: Path) -> ModelSpec:
    path = tmp / "broken.gguf"
    path.write_bytes(b"this is not a GGUF file" * 100)
    return ModelSpec(
        id="broken-model",
        source=str(path),
        # Serve retries it this often before calling it failed: long enough to see it loading
        # even when the new gateway is slow to come up on a busy machine.
        deployment=DeploymentSpec(
            num_cpus=0.5, health_check_period_s=1, max_constructor_retry_count=10
        ),
    )


def broken_embedder(tmp: Path) -> EmbedderSpec:
    path = tmp / "not-a-sentence-transformer"
    path.mkdir()
    (path / "config.json").write_text('{"oops": true}')
    return EmbedderSpec(source=str(path), deployment=DeploymentSpec(num_cpus=0.25))


async def flood(base_url: str, n: int) -> list[httpx.Response]:
    body = {"model": DEFAULT_MODEL, "prompt": "1, 2, 3, 4,", "max_tokens": 48, "temperature": 0}
    async with httpx.AsyncClient(timeout=120, headers=API.headers) as client:
        return await asyncio.gather(
            *(client.post(f"{base_url}/v1/completions", json=body) for _ in range(n))
        )


def test_flood_gets_503_with_retry_after_then_recovers(
    serve_cluster: ServeCluster, tmp_path: Path
) -> None:
    base = serve_cluster.deploy(Settings(data_dir=tmp_path, models=[one_slot_model()]))
    replies = asyncio.run(flood(base, 8))
    codes = sorted(r.status_code for r in replies)
    assert set(codes) == {200, 503}, codes
    assert codes.count(200) >= 2  # the one running and the one queued were served
    for reply in replies:
        if reply.status_code == 503:
            assert int(reply.headers["Retry-After"]) >= 1
            assert reply.json()["error"]["code"] == "overloaded"
        else:
            assert reply.json()["choices"][0]["text"]
    again = API.post(
        f"{base}/v1/completions",
        timeout=60,
        json={"model": DEFAULT_MODEL, "prompt": "Hello", "max_tokens": 4},
    )
    assert again.status_code == 200


def test_readyz_false_while_a_model_is_not_loaded_then_true_after_redeploy(
    serve_cluster: ServeCluster,
    tmp_path: Path,
) -> None:
    good = ModelSpec(
        id=DEFAULT_MODEL, source=DEFAULT_MODEL_SOURCE, deployment=DeploymentSpec(num_cpus=0.5)
    )
    settings = Settings(data_dir=tmp_path, models=[good, broken_model(tmp_path)])
    base = serve_cluster.deploy(settings, wait_ready=False)
    seen: list[tuple[int, str]] = []

    def broken_failed() -> bool:
        try:
            reply = API.get(f"{base}/readyz", timeout=10)
            state = reply.json()["models"]["broken-model"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False  # the gateway itself is not up yet
        seen.append((reply.status_code, state))
        return state == "failed"

    wait_for(broken_failed, 120, "the broken model to be reported failed")
    # "loading" while Serve retries it, then "failed"; on a busy machine the new gateway may
    # only come up once the retries are spent.
    assert {state for _, state in seen} <= {"loading", "failed"}, seen
    assert all(code == 503 for code, _ in seen)
    wait_for(
        lambda: API.get(f"{base}/readyz").json()["models"][DEFAULT_MODEL] == "ready",
        60,
        "the good model",
    )
    assert API.get(f"{base}/readyz").status_code == 503

    statuses = {m["id"]: m for m in API.get(f"{base}/v1/admin/models").json()["data"]}
    assert statuses["broken-model"]["state"] == "failed"
    assert statuses["broken-model"]["error"]  # the reason, for the operator
    assert statuses[DEFAULT_MODEL]["state"] == "ready"

    served = API.post(
        f"{base}/v1/chat/completions",
        timeout=60,
        json={
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
        },
    )
    assert served.status_code == 200

    # Removing the model is a config change applied by redeploying the same app.
    serve_cluster.deploy(Settings(data_dir=tmp_path, models=[good]))
    assert API.get(f"{base}/readyz").json()["models"] == {DEFAULT_MODEL: "ready"}
    missing = API.post(
        f"{base}/v1/chat/completions",
        timeout=30,
        json={"model": "broken-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert missing.status_code == 404


def test_redeploying_a_changed_model_drops_no_request(
    serve_cluster: ServeCluster, tmp_path: Path
) -> None:
    base = serve_cluster.deploy(Settings(data_dir=tmp_path))
    outcomes: list[int | str] = []
    stop = threading.Event()

    def ask_repeatedly() -> None:
        while not stop.is_set():
            try:
                reply = API.post(
                    f"{base}/v1/chat/completions",
                    timeout=60,
                    json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
                )
                outcomes.append(reply.status_code)
            except httpx.HTTPError as exc:
                outcomes.append(repr(exc))

    clients = [threading.Thread(target=ask_repeatedly) for _ in range(3)]
    for client in clients:
        client.start()

    def replica() -> str | None:
        return API.get(f"{base}/v1/admin/models", timeout=60).json()["data"][0]["replica"]

    try:
        wait_for(lambda: len(outcomes) >= 3, 60, "traffic before the update")
        old_replica = replica()
        changed = ModelSpec(
            id=DEFAULT_MODEL,
            source=DEFAULT_MODEL_SOURCE,
            sampling=SamplingDefaults(temperature=0.2, max_tokens=64),
        )
        serve_cluster.deploy(Settings(data_dir=tmp_path, models=[changed]), wait_ready=False)
        wait_for(lambda: replica() not in (old_replica, None), 120, "the new replica")
        served_before = len(outcomes)
        wait_for(lambda: len(outcomes) >= served_before + 3, 60, "traffic after the update")
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert outcomes and all(code == 200 for code in outcomes), outcomes


def test_knowledge_routes_answer_503_while_the_embedder_cannot_serve(
    serve_cluster: ServeCluster, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, embedder=broken_embedder(tmp_path))
    base = serve_cluster.deploy(settings, wait_ready=False)
    codes: list[str] = []

    def refused_until_failed() -> bool:
        try:
            reply = API.post(f"{base}/v1/embeddings", json={"input": "hi"}, timeout=10)
            code = reply.json()["error"]["code"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False  # the gateway itself is not up yet
        if reply.status_code == 401:
            return False  # the previous test's gateway, not yet rolled over
        assert reply.status_code == 503 and int(reply.headers["Retry-After"]) >= 1
        codes.append(code)
        return code == "embedder_failed"

    wait_for(refused_until_failed, 120, "the broken embedder to be reported failed")
    assert set(codes) <= {"embedder_loading", "embedder_failed"}, codes
    write = API.post(
        f"{base}/v1/knowledge/documents",
        json={
            "id": "flood-1",
            "title": "Floods",
            "text": "Move to high ground.",
            "category": "weather_safety",
            "source": "government",
        },
        timeout=10,
    )
    assert write.status_code == 503 and "Retry-After" in write.headers
    assert "embedding model" in write.json()["error"]["message"]
    # Queries are embedded in the knowledge replica, by the same (broken) model.
    search = API.post(f"{base}/v1/rag/search", json={"query": "flood"}, timeout=10)
    assert search.status_code == 503 and "Retry-After" in search.headers
    assert search.json()["error"]["code"] in ("knowledge_loading", "knowledge_failed")
    chat = API.post(
        f"{base}/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    assert chat.status_code == 200  # answering without the knowledge base still works

    serve_cluster.deploy(Settings(data_dir=tmp_path))
    reply = API.post(f"{base}/v1/embeddings", json={"input": "hi"}, timeout=60)
    assert reply.status_code == 200 and len(reply.json()["data"][0]["embedding"]) == 384
