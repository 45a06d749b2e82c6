"""Serve shell over `ModelServer`: one replica = one loaded model engine."""

from __future__ import annotations

from typing import Any

from ray import serve

from bigevy.config import ModelSpec
from bigevy.serving.model_server import ModelServer


@serve.deployment(name="model")
class ModelDeployment(ModelServer):
    async def __init__(self, spec: ModelSpec, retry_after: int = 2) -> None:
        """Returns once the weights are loaded: Serve sends no traffic to a replica before,
        so a rolling update keeps the old replica serving until the new one can answer."""
        ModelServer.__init__(self, spec, retry_after=retry_after)
        await self.wait_ready()

    async def describe(self) -> dict[str, Any]:
        report = await ModelServer.describe(self)
        report["replica"] = serve.get_replica_context().replica_id.unique_id
        return report
