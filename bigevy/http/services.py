"""What the routes call: one object per use case, built once per gateway replica.

Routers are module-level (`bigevy/http/*/router.py`); each route takes what it needs from
`Services`, which `create_app` puts on `app.state`. Tests build the same object in-process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, Request

from bigevy.alerts.service import AlertService
from bigevy.analytics.service import Analytics
from bigevy.answers.service import AnswerService
from bigevy.backups.service import Backups
from bigevy.connectors.state import SourceHealth
from bigevy.fleet.console import ConsoleSessions
from bigevy.fleet.contributions import ContributionQueue
from bigevy.fleet.service import FleetService
from bigevy.http.access import Authenticator, KeyAuthenticator
from bigevy.http.admin.protocol import Readiness
from bigevy.http.alerts.hub import AlertHub
from bigevy.http.contributions.serving import ContributionReview
from bigevy.http.embeddings.serving import EmbeddingService
from bigevy.http.evy.serving import Escalations
from bigevy.http.evy.writer import ChatWriter
from bigevy.http.fleet.serving import Heartbeats
from bigevy.http.gate import DeploymentGate
from bigevy.http.knowledge.serving import KnowledgeGateway
from bigevy.http.legacy.serving import LegacyService
from bigevy.http.openai.serving import OpenAIService
from bigevy.http.reading import Reading
from bigevy.http.sync.protocol import (
    AckIn,
    SignedManifest,
    SubscriptionIn,
    SubscriptionOut,
    SyncErrorIn,
    SyncState,
)
from bigevy.http.updates.serving import ArtifactUploads
from bigevy.ops.prometheus import PrometheusReader
from bigevy.updates.artifacts import Artifacts
from bigevy.updates.blobs import BlobStore
from bigevy.updates.rollouts import Rollouts

#: How long a /readyz reading serves (anyone may ask; each reading costs a Serve round trip).
READINESS_TTL_S = 2.0


class SyncCalls(Protocol):
    """The sync deployment, as the gateway awaits it (`SyncService`'s methods)."""

    async def subscription(self, node_id: str) -> SubscriptionOut: ...
    async def set_subscription(self, node_id: str, body: SubscriptionIn) -> SubscriptionOut: ...
    async def manifest(self, node_id: str, full: bool) -> SignedManifest | None: ...
    async def package_file(self, node_id: str, package_id: str) -> Path: ...
    async def ack(self, node_id: str, body: AckIn) -> SyncState: ...
    async def report_error(self, node_id: str, body: SyncErrorIn) -> SyncState: ...
    async def states(self, node_ids: list[str] | None) -> list[SyncState]: ...
    async def state(self, node_id: str) -> SyncState: ...


class ConnectorCalls(Protocol):
    """The connectors deployment, as the gateway awaits it."""

    async def health_report(self) -> list[SourceHealth]: ...


@dataclass
class Services:
    openai: OpenAIService
    embeddings: EmbeddingService
    knowledge: KnowledgeGateway
    fleet: FleetService
    sync: SyncCalls
    connectors: ConnectorCalls
    authenticator: Authenticator
    escalations: Escalations
    heartbeats: Heartbeats
    legacy: LegacyService
    alerts: AlertService
    hub: AlertHub
    contributions: ContributionQueue
    review: ContributionReview
    gate: DeploymentGate
    readiness: Reading[Readiness]
    analytics: Analytics
    console: ConsoleSessions
    prometheus: PrometheusReader
    artifacts: Artifacts
    uploads: ArtifactUploads
    rollouts: Rollouts
    backups: Backups

    @classmethod
    def build(
        cls,
        openai: OpenAIService,
        embeddings: EmbeddingService,
        knowledge: KnowledgeGateway,
        fleet: FleetService,
        sync: SyncCalls,
        connectors: ConnectorCalls,
        authenticator: Authenticator | None = None,
    ) -> Services:
        """Everything else, from the gateway's connections to the other deployments."""
        settings = openai.settings
        alerts = AlertService(fleet)
        queue = ContributionQueue(fleet)
        artifacts = Artifacts(fleet, BlobStore(settings.artifacts_uri))
        rollouts = Rollouts(fleet, settings.updates)
        return cls(
            openai=openai,
            embeddings=embeddings,
            knowledge=knowledge,
            fleet=fleet,
            sync=sync,
            connectors=connectors,
            authenticator=authenticator or KeyAuthenticator(fleet),
            escalations=Escalations(
                AnswerService(
                    ChatWriter(openai),
                    knowledge.backend,
                    embeddings.client,
                    settings.embedder.relevance_floor,
                ),
                fleet,
                {m.id: m.served_version for m in settings.models},
            ),
            heartbeats=Heartbeats(fleet, alerts, knowledge, rollouts),
            legacy=LegacyService(openai, knowledge),
            alerts=alerts,
            hub=AlertHub(alerts, asyncio.to_thread, poll_s=settings.fleet.alert_poll_s),
            contributions=queue,
            review=ContributionReview(queue, knowledge),
            gate=DeploymentGate(openai.deployments, settings.gateway.retry_after_s),
            readiness=Reading(openai.readiness, READINESS_TTL_S),
            analytics=Analytics(fleet, embeddings.vectors),
            console=ConsoleSessions(fleet),
            prometheus=PrometheusReader(settings.gateway.prometheus_url),
            artifacts=artifacts,
            uploads=ArtifactUploads(artifacts),
            rollouts=rollouts,
            backups=Backups(settings),
        )

    @property
    def embeds_queries_locally(self) -> bool:
        """Searches embed their query in the knowledge deployment, not the embedder."""
        return self.openai.settings.knowledge.embed_queries == "local"


def services(request: Request) -> Services:
    return request.app.state.services


#: A route parameter: the app's `Services`.
Svc = Annotated[Services, Depends(services)]
