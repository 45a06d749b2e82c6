"""The one JSON shape of an error response, for routes and middleware alike."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from bigevy.errors import BigEvyError


def error_response(error: BigEvyError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)
