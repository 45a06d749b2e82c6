"""What Serve says of each deployment of this application, as the gateway reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class DeploymentState:
    """Serve's view of one deployment."""

    status: str  # HEALTHY, UPDATING, DEPLOYING, UNHEALTHY, DEPLOY_FAILED, ...
    replicas: dict[str, int]  # replica count by replica state (RUNNING, STARTING, ...)
    message: str = ""

    @property
    def model_state(self) -> str:
        """What a model's state is when no replica of it can answer for itself."""
        if self.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            return "failed"
        if not self.replicas.get("RUNNING"):
            return "loading"
        return "unknown"


#: In-process use (no Serve): the model is there, one replica.
IN_PROCESS = DeploymentState(status="HEALTHY", replicas={"RUNNING": 1})


class DeploymentView(Protocol):
    """Serve's view of this application's deployments, by deployment name."""

    def deployments(self) -> dict[str, DeploymentState]: ...
