"""Calling a deployment through its Serve handle, and the one place Ray's errors become ours.

Every call the gateway (or one deployment) makes to another goes through `HandleCalls` or
`HandleModelClient`, so what a caller catches is always a `bigevy.errors` class: a replica's
own error with the details it set, or the most specific of ours for what Ray reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.serve.handle import DeploymentHandle

from bigevy.errors import BigEvyError, Overloaded, Unavailable
from bigevy.http.serve_status import DeploymentState
from bigevy.serving.engine import GenerationEvent, GenerationRequest

#: What a caller is told to wait when Ray gives no figure (a replica that died is replaced
#: by Serve within seconds).
RETRY_AFTER_S = 2


def as_bigevy_error(exc: BaseException, retry_after: float = RETRY_AFTER_S) -> BigEvyError | None:
    """Ours for `exc`, the most specific that fits, or None for a bug (a plain exception)."""
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
        if isinstance(seen, RayActorError | ReplicaUnavailableError | DeploymentUnavailableError):
            return Unavailable(
                "a replica stopped while answering; retry shortly",
                code="replica_unavailable",
                retry_after=retry_after,
            )
        seen = seen.__cause__
    return None


@contextmanager
def serve_errors(retry_after: float = RETRY_AFTER_S) -> Iterator[None]:
    """Re-raise what a handle call raised as ours (`from None`: Ray's chain is noise to a
    caller); a plain exception, a bug, passes unchanged."""
    try:
        yield
    except BigEvyError as exc:
        raise (as_bigevy_error(exc, retry_after) or exc) from None
    except Exception as exc:
        error = as_bigevy_error(exc, retry_after)
        if error is None:
            raise
        raise error from None


class HandleCalls:
    """`await client.method(*args)` on a deployment handle, as if it were the object itself."""

    def __init__(self, handle: DeploymentHandle, retry_after: int = RETRY_AFTER_S) -> None:
        self.handle = handle
        self.retry_after = retry_after

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.handle, name)

        async def call(*args: Any) -> Any:
            with serve_errors(self.retry_after):
                return await method.remote(*args)

        return call


class HandleModelClient:
    """A model reached through its Serve deployment handle (Serve's router balances replicas)."""

    def __init__(self, handle: DeploymentHandle, retry_after: int = RETRY_AFTER_S) -> None:
        self.handle = handle
        self.retry_after = retry_after

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        response = self.handle.options(stream=True).generate.remote(request)
        # `cancel()` re-raises what the request failed with (Ray's own error), so it is
        # mapped too.
        with serve_errors(self.retry_after):
            try:
                async for event in response:
                    yield event
            finally:
                response.cancel()  # a client that hung up stops the generation on the replica

    async def describe(self) -> dict[str, Any]:
        with serve_errors(self.retry_after):
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
