"""Serve shell over the connector runner: fetches every configured source on its schedule
and delivers to the knowledge deployment and the alert service. One replica: it is the only
writer of the connectors' state file."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from bigevy.alerts.service import AlertService
from bigevy.config import Settings
from bigevy.connectors.runner import ConnectorRunner
from bigevy.connectors.sink import ServerSink
from bigevy.connectors.state import SourceHealth
from bigevy.fleet.service import open_fleet


class _KnowledgeCalls:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def put_many(self, docs: list[Any]) -> list[Any]:
        return await self.handle.put_many.remote(docs)

    async def delete(self, document_id: str) -> Any:
        return await self.handle.delete.remote(document_id)


@serve.deployment(name="connectors", num_replicas=1)
class ConnectorsDeployment:
    async def __init__(self, settings: Settings, knowledge: DeploymentHandle) -> None:
        spec = settings.connectors
        if spec.state_file is None:
            spec = spec.model_copy(update={"state_file": settings.data_dir / "connectors.json"})
        sink = ServerSink(_KnowledgeCalls(knowledge), AlertService(open_fleet(settings)))
        self.runner = ConnectorRunner.from_spec(spec, sink)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.runner.run_forever(self.stop))

    async def health(self) -> list[SourceHealth]:
        return self.runner.health()

    async def check_health(self) -> None:
        if self.task.done():
            raise RuntimeError(f"the connector loop ended: {self.task.exception()!r}")
