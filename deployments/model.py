"""The model deployment: one replica = one loaded `ModelServer`."""

from __future__ import annotations

from ray import serve

from bigevy.config import ModelSpec
from bigevy.serving.model_server import ModelServer


async def open_model(spec: ModelSpec, retry_after: int = 2) -> ModelServer:
    """Returns once the weights are loaded: Serve sends no traffic to a replica before, so a
    rolling update keeps the old replica serving until the new one can answer."""
    replica = serve.get_replica_context().replica_id.unique_id
    server = ModelServer(spec, retry_after=retry_after, replica=replica)
    await server.wait_ready()
    return server
