"""The connectors deployment: fetches every configured source on its schedule and delivers to
the knowledge deployment and the alert service. One replica: it is the only writer of the
connectors' state file."""

from __future__ import annotations

from ray.serve.handle import DeploymentHandle

from bigevy.alerts.service import AlertService
from bigevy.config import Settings
from bigevy.connectors.runner import ConnectorRunner
from bigevy.connectors.sink import ServerSink
from bigevy.fleet.service import open_fleet
from deployments.handles import HandleCalls


async def open_connectors(settings: Settings, knowledge: DeploymentHandle) -> ConnectorRunner:
    spec = settings.connectors.model_copy(update={"state_file": settings.connectors_state_file})
    sink = ServerSink(HandleCalls(knowledge), AlertService(open_fleet(settings)))
    runner = ConnectorRunner.from_spec(spec, sink)
    runner.start()
    return runner
