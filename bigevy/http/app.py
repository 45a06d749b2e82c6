"""The gateway's FastAPI app: the middleware, the one error mapping, and every router.

The routes live beside their wire models, one folder per endpoint family
(`bigevy/http/<family>/router.py` and `protocol.py`); what they call is `Services`. The
operator's console (`bigevy/http/console/`) is pages over the same services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from bigevy.backups.schedule import keep_backing_up
from bigevy.http.access import AuthenticateFirst
from bigevy.http.admin import router as admin
from bigevy.http.alerts import router as alerts
from bigevy.http.analytics import router as analytics
from bigevy.http.backups import router as backups
from bigevy.http.bodylimit import BodyLimit
from bigevy.http.console import alerts as console_alerts
from bigevy.http.console import fleet as console_fleet
from bigevy.http.console import knowledge as console_knowledge
from bigevy.http.console import review as console_review
from bigevy.http.console import router as console
from bigevy.http.console import updates as console_updates
from bigevy.http.console.guard import STATIC
from bigevy.http.console.pages import HERE as CONSOLE_FILES
from bigevy.http.contributions import router as contributions
from bigevy.http.embeddings import router as embeddings
from bigevy.http.errors import install_error_handlers
from bigevy.http.evy import router as evy
from bigevy.http.faq import router as faq
from bigevy.http.fleet import router as fleet
from bigevy.http.gauges import report_census
from bigevy.http.knowledge import router as knowledge
from bigevy.http.legacy import router as legacy
from bigevy.http.openai import router as openai
from bigevy.http.services import Services
from bigevy.http.sync import router as sync
from bigevy.http.updates import router as updates
from bigevy.updates.rollouts import move_rollouts

ROUTERS = [
    console.entry,
    console.router,
    console_fleet.router,
    console_alerts.router,
    console_knowledge.router,
    console_review.router,
    console_updates.router,
    fleet.router,
    sync.router,
    updates.router,
    backups.router,
    alerts.router,
    contributions.router,
    faq.router,
    analytics.router,
    admin.router,
    openai.router,
    embeddings.router,
    knowledge.router,
    evy.router,
    legacy.router,
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The replica's background work: the gauges it keeps current (bigevy/http/gauges.py),
    rollout phases that soaked, and scheduled backups."""
    services = app.state.services
    data_dir = services.openai.settings.data_dir
    settings = services.openai.settings
    tasks = [
        asyncio.create_task(report_census(services.fleet, services.alerts, data_dir)),
        asyncio.create_task(move_rollouts(services.rollouts, settings.updates.check_interval_s)),
    ]
    if settings.backups.every_h:
        tasks.append(
            asyncio.create_task(
                keep_backing_up(services.backups, services.fleet, settings.backups.every_h)
            )
        )
    yield
    for task in tasks:
        task.cancel()


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="bigEVY",
        version="0.1.0",
        description="Central node of the EVY network: OpenAI-compatible answers for lilEVY. "
        "Every route but /healthz and /readyz takes `Authorization: Bearer <key>`; "
        "`x-bigevy-roles` on each operation says which keys it admits.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by the admin router, to key holders only
    )
    app.state.services = services
    install_error_handlers(app)
    limits = services.fleet.spec
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_body_bytes,
        max_node_bytes=limits.max_node_body_bytes,
        max_upload_bytes=services.openai.settings.updates.max_artifact_bytes,
    )
    # Added last, so it runs first: no body is read for a caller without a valid key.
    app.add_middleware(
        AuthenticateFirst, authenticator=services.authenticator, console=services.console
    )
    for router in ROUTERS:
        document_roles(router)
        app.include_router(router)
    app.mount(STATIC.rstrip("/"), StaticFiles(directory=CONSOLE_FILES / "static"), "console")
    return app


def document_roles(router: APIRouter) -> None:
    """Each operation's `x-bigevy-roles`: the roles its `allow(...)` admits."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        for dependency in route.dependant.dependencies:
            roles = getattr(dependency.call, "roles", None)
            if roles is not None:
                route.openapi_extra = {"x-bigevy-roles": sorted(roles)}
