"""The EVY prototype's routes, for lilEVY clients not yet upgraded."""

from __future__ import annotations

from fastapi import APIRouter

from bigevy.fleet.roles import ANY_ROLE
from bigevy.http.access import allow
from bigevy.http.errors import ERRORS
from bigevy.http.gate import SEARCHING
from bigevy.http.legacy.protocol import (
    LegacyGenerateRequest,
    LegacyGenerateResponse,
    LegacySearchRequest,
    LegacySearchResponse,
)
from bigevy.http.services import Svc

router = APIRouter(tags=["legacy"], responses=ERRORS, dependencies=[allow(ANY_ROLE)])


@router.post("/llm/generate", response_model=LegacyGenerateResponse)
async def legacy_generate(s: Svc, request: LegacyGenerateRequest) -> LegacyGenerateResponse:
    """The EVY prototype's generation route."""
    return await s.legacy.generate(request)


@router.post("/search", response_model=LegacySearchResponse, dependencies=[SEARCHING])
async def legacy_search(s: Svc, request: LegacySearchRequest) -> LegacySearchResponse:
    """The EVY prototype's search route: hybrid search, as three parallel lists."""
    return await s.legacy.search(request)
