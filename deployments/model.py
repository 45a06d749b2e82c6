"""Serve shell over `ModelServer`: one replica = one loaded model engine."""

from __future__ import annotations

from ray import serve

from bigevy.config import ModelSpec
from bigevy.serving.model_server import ModelServer


@serve.deployment(name="model")
class ModelDeployment(ModelServer):
    async def __init__(self, spec: ModelSpec, retry_after: int = 2) -> None:
        ModelServer.__init__(self, spec, retry_after=retry_after)
        self.start()
