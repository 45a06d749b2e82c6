"""Operating the gateway: liveness, readiness, the API's own document, model and source status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bigevy.connectors.state import SourceHealth
from bigevy.fleet.roles import ANY_ROLE, STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.admin.protocol import Liveness, ModelStatusList, Readiness
from bigevy.http.errors import ERRORS
from bigevy.http.services import Svc

router = APIRouter()


@router.get("/openapi.json", tags=["ops"], dependencies=[allow(ANY_ROLE)])
async def openapi(request: Request) -> JSONResponse:
    """This API's OpenAPI document."""
    return JSONResponse(request.app.openapi())


@router.get("/healthz", response_model=Liveness, tags=["ops"])
async def healthz() -> Liveness:
    """Public: the gateway process is alive."""
    return Liveness()


@router.get(
    "/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["ops"]
)
async def readyz(s: Svc) -> JSONResponse:
    """Public: every deployment healthy and every model loaded (503 until then). Read at
    most every `READINESS_TTL_S`: anyone may call it, and each reading is a Serve
    controller round trip and a call to every model."""
    readiness = await s.readiness.get()
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@router.get(
    "/v1/admin/models",
    response_model=ModelStatusList,
    responses=ERRORS,
    tags=["admin"],
    dependencies=[allow(STATUS_READERS)],
)
async def admin_models(s: Svc) -> ModelStatusList:
    """Each model's state, replicas and throughput."""
    return ModelStatusList(data=await s.openai.model_status())


@router.get(
    "/v1/connectors",
    response_model=list[SourceHealth],
    responses=ERRORS,
    tags=["alerts"],
    dependencies=[allow(STATUS_READERS)],
)
async def connector_health(s: Svc) -> list[SourceHealth]:
    """Each data source: healthy or not (and why), last success, next fetch."""
    return await s.connectors.health_report()
