"""Serve shell over the gateway: the HTTP ingress that routes each request to its deployment."""

from __future__ import annotations

from fastapi import FastAPI
from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.fleet.service import open_fleet
from bigevy.http.app import create_app
from bigevy.http.embeddings.serving import EmbeddingService
from bigevy.http.knowledge.serving import KnowledgeGateway
from bigevy.http.openai.serving import OpenAIService
from bigevy.http.services import Services
from deployments.handles import HandleCalls, HandleModelClient, ServeDeploymentView


class Gateway:
    """Each replica opens the fleet database and holds a handle on every other deployment."""

    def __init__(
        self,
        settings: Settings,
        models: dict[str, DeploymentHandle],
        embedder: DeploymentHandle,
        knowledge: DeploymentHandle,
        sync: DeploymentHandle,
        connectors: DeploymentHandle,
    ) -> None:
        wait = settings.gateway.retry_after_s
        clients = {model_id: HandleModelClient(h, wait) for model_id, h in models.items()}
        self.services = Services.build(
            OpenAIService(settings, clients, ServeDeploymentView(settings.app_name)),
            EmbeddingService(settings.embedder, HandleCalls(embedder, wait)),
            KnowledgeGateway(HandleCalls(knowledge, wait)),
            open_fleet(settings),
            HandleCalls(sync, wait),
            HandleCalls(connectors, wait),
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.services)
