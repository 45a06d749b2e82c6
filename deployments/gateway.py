"""Serve shell over the gateway: the HTTP ingress that routes each request to its model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.fleet.service import open_fleet
from bigevy.gateway.app import create_app
from bigevy.gateway.embeddings import EmbeddingService
from bigevy.gateway.knowledge import KnowledgeGateway
from bigevy.gateway.service import DeploymentState, OpenAIService
from bigevy.serving.engine import GenerationEvent, GenerationRequest


class HandleModelClient:
    """A model reached through its Serve deployment handle (Serve's router balances replicas)."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        response = self.handle.options(stream=True).generate.remote(request)
        try:
            async for event in response:
                yield event
        finally:
            response.cancel()  # a client that hung up stops the generation on the replica

    async def describe(self) -> dict[str, Any]:
        return await self.handle.describe.remote()


class ServeDeploymentView:
    """Serve's own status of this application's deployments."""

    def __init__(self, app_name: str) -> None:
        self.app_name = app_name

    def deployments(self) -> dict[str, DeploymentState]:
        app = serve.status().applications.get(self.app_name)
        if app is None:
            return {}
        return {
            name: DeploymentState(
                status=str(getattr(d.status, "value", d.status)),
                replicas={str(getattr(k, "value", k)): n for k, n in d.replica_states.items()},
                message=d.message,
            )
            for name, d in app.deployments.items()
        }


class HandleCalls:
    """`await client.method(*args)` on a deployment handle, as if it were the object itself."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.handle, name)

        async def call(*args: Any) -> Any:
            return await method.remote(*args)

        return call


@serve.deployment(name="gateway")
@serve.ingress()
class Gateway:
    def __init__(
        self,
        settings: Settings,
        models: dict[str, DeploymentHandle],
        embedder: DeploymentHandle,
        knowledge: DeploymentHandle,
        sync: DeploymentHandle,
        connectors: DeploymentHandle,
    ) -> None:
        clients = {model_id: HandleModelClient(h) for model_id, h in models.items()}
        self.service = OpenAIService(settings, clients, ServeDeploymentView(settings.app_name))
        self.embeddings = EmbeddingService(settings.embedder, HandleCalls(embedder))
        self.knowledge = KnowledgeGateway(HandleCalls(knowledge))
        self.fleet = open_fleet(settings)
        self.sync = HandleCalls(sync)
        self.connectors = HandleCalls(connectors)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(
            self.service, self.embeddings, self.knowledge, self.fleet, self.sync, self.connectors
        )
