"""The one mapping from errors to responses, and the one JSON shape of an error.

Routes raise `bigevy.errors` classes (what a deployment raised arrives as one of them too:
`deployments/handles.py`); FastAPI's own errors (a body that fails its schema, an unknown
path) are written in the same shape, and anything else is a bug: logged, and answered 500
without its details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from bigevy import metrics
from bigevy.errors import BigEvyError, NotFound, ValidationFailed
from bigevy.http.console.pages import error_page, is_console

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The one error shape of every bigEVY route (OpenAI's)."""

    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for routes that may answer these statuses (all in one shape)."""
    return {code: {"model": ErrorResponse} for code in codes}


#: The statuses any route may answer with besides its own: every route documents them all,
#: in the one error shape.
ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)


def error_response(error: BigEvyError) -> JSONResponse:
    """The reply for `error`; every one is counted (status and code) where it is written."""
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=counted(error))


def error_page_response(error: BigEvyError) -> Response:
    """`error` as a console page (the same status, message and Retry-After), counted too."""
    return error_page(error, counted(error))


def counted(error: BigEvyError) -> dict[str, str]:
    """Counts `error` (for a reply written elsewhere, too); the headers its reply carries."""
    headers = error.headers()
    status = str(error.status_code)
    metrics.REFUSALS.inc(tags={"status": status, "code": error.code or "none"})
    if error.retry_after is not None:
        wait = max(1, round(error.retry_after))
        headers["Retry-After"] = str(wait)
        metrics.RETRY_AFTER.observe(wait, tags={"status": status})
    return headers


def invalid_body(exc: RequestValidationError) -> ValidationFailed:
    """The first schema violation, naming its field."""
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
    return ValidationFailed(message, param=field, code=first.get("type"))


def http_error(exc: StarletteHTTPException) -> BigEvyError:
    """Starlette's own refusals (no such path, method not allowed) as ours."""
    if exc.status_code == 404:
        return NotFound(str(exc.detail))
    error = BigEvyError(str(exc.detail), code=f"http_{exc.status_code}")
    error.status_code = exc.status_code
    error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return error


def reply(request: Request, error: BigEvyError) -> Response:
    """`error` as the caller reads it: JSON for the API, a page for the console's people."""
    if is_console(request.url.path):
        return error_page_response(error)
    return error_response(error)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return reply(request, invalid_body(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return reply(request, http_error(exc))

    @app.exception_handler(BigEvyError)
    async def _ours(request: Request, exc: BigEvyError) -> Response:
        return reply(request, exc)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return reply(
            request, BigEvyError("internal error; see the server log", code="internal_error")
        )
