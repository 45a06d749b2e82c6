"""The few errors bigEVY raises on purpose. Each knows its HTTP status; the gateway maps them once.

    BigEvyError                      500 server_error
    ├── InvalidRequest               400 (ContextLengthExceeded; ValidationFailed 422)
    ├── Unauthorized                 401
    ├── Forbidden                    403
    ├── NotFound                     404 (ModelNotFound)
    ├── Conflict                     409
    ├── PayloadTooLarge              413
    ├── RangeNotSatisfiable          416
    ├── RateLimited                  429
    └── Unavailable                  503 + Retry-After (ModelLoading, ModelFailed, Overloaded,
                                     DeploymentLoading, DeploymentFailed)

A replica raises them; the gateway gets them back through its deployment handles, where
Ray's own errors are turned into these (`deployments/handles.py`), and `bigevy/http/errors.py`
writes each as the one JSON error shape. They cross Ray process boundaries, so they pickle by
their constructor arguments.
"""

from __future__ import annotations

from typing import Any


class BigEvyError(Exception):
    """Base class: a message for the caller plus the OpenAI-style `type` and `code`."""

    status_code = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"param": self.param, "code": self.code, "retry_after": self.retry_after}
        return (_rebuild, (type(self), self.message, kwargs))

    def headers(self) -> dict[str, str]:
        """Headers its reply carries besides Retry-After."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _rebuild(cls: type[BigEvyError], message: str, kwargs: dict[str, Any]) -> BigEvyError:
    return cls(message, **kwargs)


class InvalidRequest(BigEvyError):
    status_code = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ValidationFailed(InvalidRequest):
    """The body does not match the schema (FastAPI's 422)."""

    status_code = 422


class Unauthorized(BigEvyError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(BigEvyError):
    status_code = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(BigEvyError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(BigEvyError):
    status_code = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(BigEvyError):
    status_code = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(BigEvyError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class Unavailable(BigEvyError):
    """Try again later: the caller should honour `retry_after`."""

    status_code = 503
    type = "server_error"
    code = "service_unavailable"


class ModelLoading(Unavailable):
    code = "model_loading"


class Overloaded(Unavailable):
    code = "overloaded"


class ModelFailed(Unavailable):
    code = "model_failed"


class DeploymentLoading(Unavailable):
    """A deployment the route needs has no replica running yet; `code` names it
    (`embedder_loading`, `knowledge_loading`)."""

    code = "deployment_loading"


class DeploymentFailed(Unavailable):
    """A deployment the route needs failed to start (`embedder_failed`, `knowledge_failed`)."""

    code = "deployment_failed"


class RangeNotSatisfiable(BigEvyError):
    """416: a Range starting at or past the end of the file (the reply says its size)."""

    status_code = 416
    type = "invalid_request_error"
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}
