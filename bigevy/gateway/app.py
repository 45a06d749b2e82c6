"""The gateway's HTTP surface: thin routes over `OpenAIService`, and the one error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from bigevy.alerts.service import AlertService
from bigevy.answers.service import AnswerService
from bigevy.api.admin import Liveness, ModelStatusList, Readiness
from bigevy.api.embeddings import EmbeddingList, EmbeddingRequest
from bigevy.api.knowledge import (
    BatchResult,
    DocumentBatch,
    DocumentCreate,
    DocumentOut,
    DocumentPage,
    DocumentReplace,
    EvyAnswer,
    EvyQuery,
    KnowledgeStatus,
    MaintenanceResult,
    SearchRequest,
    SearchResponse,
    WriteOut,
)
from bigevy.api.legacy import (
    LegacyGenerateRequest,
    LegacyGenerateResponse,
    LegacySearchRequest,
    LegacySearchResponse,
)
from bigevy.api.openai import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
    error_responses,
)
from bigevy.connectors.state import SourceHealth
from bigevy.errors import BigEvyError, NotFound, Overloaded, ValidationFailed
from bigevy.fleet.contributions import ContributionQueue
from bigevy.fleet.roles import ANY_ROLE, ESCALATORS, OPERATORS, STATUS_READERS
from bigevy.fleet.service import PENDING_TOUCH_S, FleetService
from bigevy.gateway.access import (
    AuthenticateFirst,
    Authenticator,
    KeyAuthenticator,
    acting_as,
    allow,
)
from bigevy.gateway.alerts import AlertHub, add_alert_routes
from bigevy.gateway.bodylimit import BodyLimit
from bigevy.gateway.contributions import add_contribution_routes
from bigevy.gateway.embeddings import EmbeddingService
from bigevy.gateway.faq import add_faq_routes
from bigevy.gateway.fleet import IdempotencyKey, add_fleet_routes, caller_of, claim_or_replay
from bigevy.gateway.gate import DeploymentGate
from bigevy.gateway.knowledge import KnowledgeGateway
from bigevy.gateway.legacy import LegacyService
from bigevy.gateway.reading import Reading
from bigevy.gateway.responses import error_response
from bigevy.gateway.service import OpenAIService
from bigevy.gateway.sync import add_sync_routes
from bigevy.gateway.writer import ChatWriter
from bigevy.knowledge.records import SearchFilters
from bigevy.knowledge.taxonomy import Category, Source

log = logging.getLogger(__name__)

ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503)
#: How long a /readyz reading serves (anyone may ask; each reading costs a Serve round trip).
READINESS_TTL_S = 2.0


def as_bigevy_error(exc: BaseException, retry_after: int) -> BigEvyError | None:
    """Our error behind whatever wrapped it on the way (Ray task errors, Serve back-pressure)."""
    from ray.serve.exceptions import BackPressureError

    seen: BaseException | None = exc
    while seen is not None:
        cause = getattr(seen, "cause", None)
        if isinstance(cause, BaseException):
            # A Ray task error: it may itself subclass our error, but only its cause
            # carries the attributes (code, param) the replica set.
            seen = cause
            continue
        if isinstance(seen, BigEvyError):
            return type(seen)(
                seen.message, param=seen.param, code=seen.code, retry_after=seen.retry_after
            )
        if isinstance(seen, BackPressureError):
            return Overloaded(
                "bigEVY is at capacity for this model; retry shortly",
                retry_after=seen.retry_after_s or retry_after,
            )
        seen = seen.__cause__
    return None


def _install_error_handlers(app: FastAPI, retry_after: int) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            field = None  # its loc is a character offset, not a field
            message = f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
        elif field is None:
            message = f"request body must be a JSON object: {first['msg']}"
        else:
            message = f"{field}: {first['msg']}"
        return error_response(ValidationFailed(message, param=field, code=first.get("type")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = BigEvyError(str(exc.detail), code=f"http_{exc.status_code}")
        error.status_code = exc.status_code
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        if exc.status_code == 404:
            error = NotFound(str(exc.detail))
        return error_response(error)

    @app.exception_handler(BigEvyError)
    async def _ours(_: Request, exc: BigEvyError) -> JSONResponse:
        # A Ray task error subclasses the error a replica raised; its cause has the details.
        return error_response(as_bigevy_error(exc, retry_after) or exc)

    @app.exception_handler(Exception)
    async def _any(_: Request, exc: Exception) -> JSONResponse:
        error = as_bigevy_error(exc, retry_after)
        if error is None:
            log.exception("unhandled error")
            error = BigEvyError("internal error; see the server log", code="internal_error")
        return error_response(error)


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def create_app(
    service: OpenAIService,
    embeddings: EmbeddingService,
    knowledge: KnowledgeGateway,
    fleet: FleetService,
    sync: Any,
    connectors: Any,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    evy = AnswerService(
        ChatWriter(service),
        knowledge.backend,
        embeddings.client,
        service.settings.embedder.relevance_floor,
    )
    legacy = LegacyService(service, knowledge)
    retry_after = service.settings.gateway.retry_after_s
    gate = DeploymentGate(service.deployments, retry_after)

    def needs(*deployments: str) -> Any:
        """A route dependency: 503 + Retry-After while one of `deployments` cannot serve."""

        async def check() -> None:
            await gate.require(*deployments)

        return Depends(check)

    writing = needs("embedder", "knowledge")  # documents are embedded by the embedder
    local_queries = service.settings.knowledge.embed_queries == "local"
    searching = needs("knowledge") if local_queries else writing
    app = FastAPI(
        title="bigEVY",
        version="0.1.0",
        description="Central node of the EVY network: OpenAI-compatible answers for lilEVY. "
        "Every route but /healthz and /readyz takes `Authorization: Bearer <key>`; "
        "`x-bigevy-roles` on each operation says which keys it admits.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, to key holders only
    )
    app.state.service = service
    app.state.authenticator = authenticator or KeyAuthenticator(fleet)
    _install_error_handlers(app, retry_after)
    limits = service.settings.fleet
    app.add_middleware(
        BodyLimit, max_bytes=limits.max_body_bytes, max_node_bytes=limits.max_node_body_bytes
    )
    # Added last, so it runs first: no body is read for a caller without a valid key.
    app.add_middleware(AuthenticateFirst, authenticator=app.state.authenticator)
    alerts = AlertService(fleet)
    add_fleet_routes(app.router, fleet, knowledge.revision, alerts)
    add_sync_routes(app.router, sync)
    hub = AlertHub(alerts, asyncio.to_thread, poll_s=limits.alert_poll_s)

    async def node_region(node_id: str) -> str:
        return await asyncio.to_thread(fleet.node_region, node_id)

    add_alert_routes(app.router, hub, node_region)
    add_contribution_routes(app.router, ContributionQueue(fleet), knowledge)
    add_faq_routes(app.router, knowledge)

    @app.get(
        "/v1/connectors",
        response_model=list[SourceHealth],
        responses=ERRORS,
        tags=["alerts"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def connector_health() -> list[SourceHealth]:
        """Each data source: healthy or not (and why), last success, next fetch."""
        return await guarded(connectors.health())

    async def guarded(call: Any) -> Any:
        try:
            return await call
        except BigEvyError:
            raise
        except Exception as exc:
            error = as_bigevy_error(exc, retry_after)
            if error is None:
                raise
            raise error from None

    @app.get("/openapi.json", tags=["ops"], dependencies=[allow(ANY_ROLE)])
    async def openapi() -> JSONResponse:
        """This API's OpenAPI document."""
        return JSONResponse(app.openapi())

    @app.get("/healthz", response_model=Liveness, tags=["ops"])
    async def healthz() -> Liveness:
        """Public: the gateway process is alive."""
        return Liveness()

    ready = Reading(service.readiness, READINESS_TTL_S)

    @app.get(
        "/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["ops"]
    )
    async def readyz() -> JSONResponse:
        """Public: every deployment healthy and every model loaded (503 until then). Read at
        most every `READINESS_TTL_S`: anyone may call it, and each reading is a Serve
        controller round trip and a call to every model."""
        readiness = await ready.get()
        return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)

    @app.get(
        "/v1/models", response_model=ModelList, tags=["openai"], dependencies=[allow(ANY_ROLE)]
    )
    async def list_models() -> ModelList:
        return service.list_models()

    @app.get(
        "/v1/models/{model_id}",
        response_model=ModelCard,
        responses=ERRORS,
        tags=["openai"],
        dependencies=[allow(ANY_ROLE)],
    )
    async def get_model(model_id: str) -> ModelCard:
        return service.get_model(model_id)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses=ERRORS,
        tags=["openai"],
        dependencies=[allow(ANY_ROLE)],
    )
    async def chat_completions(request: ChatCompletionRequest) -> Any:
        """Chat; `stream: true` answers with server-sent events."""
        result = await guarded(service.chat(request))
        return result if isinstance(result, ChatCompletion) else _stream(result)

    @app.post(
        "/v1/completions",
        response_model=Completion,
        responses=ERRORS,
        tags=["openai"],
        dependencies=[allow(ANY_ROLE)],
    )
    async def completions(request: CompletionRequest) -> Any:
        result = await guarded(service.completions(request))
        return result if isinstance(result, Completion) else _stream(result)

    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingList,
        responses=ERRORS,
        tags=["openai"],
        dependencies=[allow(ANY_ROLE), needs("embedder")],
    )
    async def create_embeddings(request: EmbeddingRequest) -> EmbeddingList:
        """Embed texts with the knowledge base's model (vectors are L2-normalised)."""
        return await guarded(embeddings.create(request))

    @app.post(
        "/v1/knowledge/documents",
        response_model=WriteOut,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS), writing],
    )
    async def create_document(body: DocumentCreate) -> JSONResponse:
        """Add (or idempotently re-send) a document: chunked, embedded, searchable at once."""
        result = await guarded(knowledge.put(body.id, body))
        status = 201 if result.status == "added" else 200
        return JSONResponse(result.model_dump(), status_code=status)

    @app.post(
        "/v1/knowledge/documents/batch",
        response_model=BatchResult,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS), writing],
    )
    async def create_documents(batch: DocumentBatch) -> BatchResult:
        """Up to 256 documents in one call (what `bigevy ingest` sends); each gets its outcome."""
        return await guarded(knowledge.put_many(batch))

    @app.put(
        "/v1/knowledge/documents/{document_id:path}",
        response_model=WriteOut,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS), writing],
    )
    async def put_document(document_id: str, body: DocumentReplace) -> WriteOut:
        """Create or replace a document; the same content again changes nothing."""
        return await guarded(knowledge.put(document_id, body))

    @app.get(
        "/v1/knowledge/documents/{document_id:path}",
        response_model=DocumentOut,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(ANY_ROLE), needs("knowledge")],
    )
    async def get_document(document_id: str) -> DocumentOut:
        return await guarded(knowledge.get(document_id))

    @app.get(
        "/v1/knowledge/documents",
        response_model=DocumentPage,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(ANY_ROLE), needs("knowledge")],
    )
    async def list_documents(
        category: list[Category] = Query(default=[]),
        source: list[Source] = Query(default=[]),
        region: list[str] = Query(default=[]),
        language: list[str] = Query(default=[]),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=500),
    ) -> DocumentPage:
        filters = SearchFilters(
            categories=[str(c) for c in category],
            sources=[str(s) for s in source],
            regions=region,
            languages=language,
        )
        return await guarded(knowledge.list(filters, offset, limit))

    @app.delete(
        "/v1/knowledge/documents/{document_id:path}",
        response_model=WriteOut,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS), needs("knowledge")],
    )
    async def delete_document(document_id: str) -> WriteOut:
        """Remove from search; a tombstone with a new revision remains for edge sync."""
        return await guarded(knowledge.delete(document_id))

    @app.get(
        "/v1/knowledge/status",
        response_model=KnowledgeStatus,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(STATUS_READERS), needs("knowledge")],
    )
    async def knowledge_status() -> KnowledgeStatus:
        """Sizes, revision, embedding model, and how current each index is."""
        return await guarded(knowledge.status())

    @app.post(
        "/v1/knowledge/maintain",
        response_model=MaintenanceResult,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS), needs("knowledge")],
    )
    async def knowledge_maintain() -> MaintenanceResult:
        """Build the vector index if due and fold new rows into the indexes now."""
        return await guarded(knowledge.maintain())

    @app.post(
        "/v1/rag/search",
        response_model=SearchResponse,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(ANY_ROLE), searching],
    )
    async def rag_search(request: SearchRequest) -> SearchResponse:
        """Hybrid (vector + BM25, fused per document), vector or keyword search, with citations."""
        return await guarded(knowledge.search(request))

    @app.post(
        "/v1/evy/query",
        response_model=EvyAnswer,
        responses=ERRORS,
        tags=["evy"],
        dependencies=[allow(ESCALATORS), searching],
    )
    async def evy_query(
        query: EvyQuery, request: Request, idempotency_key: str | None = IdempotencyKey
    ) -> Any:
        """A lilEVY escalation: a grounded, cited answer, and the same cut to fit its SMS.

        A node key asks only as its own node; an `Idempotency-Key` retried (a node's outbox
        after an outage) gets the first answer again, not a second one. Without a `region`,
        the node's enrolled region is used."""
        caller = caller_of(request)
        acting_as(caller, query.node_id)
        scope = caller.node_id or caller.key_id or "anonymous"
        route = "/v1/evy/query"
        if replayed := await claim_or_replay(fleet, scope, idempotency_key, route):
            return replayed  # before any lookup: a replay reads nothing else
        started = time.perf_counter()
        # While answering, the reservation is kept fresh: if this replica dies, a retry takes
        # it over within PENDING_TIMEOUT_S instead of waiting for it.
        keeping = asyncio.create_task(keep_claimed(scope, idempotency_key))
        try:
            enrolled = await enrolled_region(query.node_id)
            if query.region is None:
                query = query.model_copy(update={"region": enrolled})
            answer: EvyAnswer = await guarded(evy.query(query, enrolled))
            body = answer.model_dump(mode="json")
            await asyncio.to_thread(
                fleet.record_escalation,
                reply=(scope, idempotency_key, body) if idempotency_key else None,
                node_id=caller.node_id,
                language=query.language,
                region=query.region,
                message_chars=len(query.message),
                emergency_kind=answer.triage.kind,
                model=answer.model,
                sms_segments=answer.sms_segments,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        except BaseException:
            # Unanswered or unrecorded: the key is free again, so a retry is answered afresh.
            if idempotency_key:
                await asyncio.to_thread(fleet.release_reply, scope, idempotency_key)
            raise
        finally:
            keeping.cancel()
        return answer

    async def keep_claimed(scope: str, key: str | None) -> None:
        while key:
            await asyncio.sleep(PENDING_TOUCH_S)
            await asyncio.to_thread(fleet.touch_reply, scope, key)

    async def enrolled_region(node_id: str) -> str | None:
        """The region a node was enrolled in, if it names one: a lilEVY client that sends no
        region (the prototype's) got another country's emergency numbers without it."""
        try:
            region = await node_region(node_id)
        except NotFound:  # an admin or escalator key may ask for a node not enrolled here
            return None
        return None if region == "global" else region

    @app.post(
        "/llm/generate",
        response_model=LegacyGenerateResponse,
        responses=ERRORS,
        tags=["legacy"],
        dependencies=[allow(ANY_ROLE)],
    )
    async def legacy_generate(request: LegacyGenerateRequest) -> LegacyGenerateResponse:
        """The EVY prototype's generation route, for lilEVY clients not yet upgraded."""
        return await guarded(legacy.generate(request))

    @app.post(
        "/search",
        response_model=LegacySearchResponse,
        responses=ERRORS,
        tags=["legacy"],
        dependencies=[allow(ANY_ROLE), searching],
    )
    async def legacy_search(request: LegacySearchRequest) -> LegacySearchResponse:
        """The EVY prototype's search route: hybrid search, as three parallel lists."""
        return await guarded(legacy.search(request))

    @app.get(
        "/v1/admin/models",
        response_model=ModelStatusList,
        responses=ERRORS,
        tags=["admin"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def admin_models() -> ModelStatusList:
        """Each model's state, replicas and throughput."""
        return ModelStatusList(data=await service.model_status())

    _document_roles(app)
    return app


def _document_roles(app: FastAPI) -> None:
    """Each operation's `x-bigevy-roles`: the roles its `allow(...)` admits."""
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for dependency in route.dependant.dependencies:
            roles = getattr(dependency.call, "roles", None)
            if roles is not None:
                route.openapi_extra = {"x-bigevy-roles": sorted(roles)}
