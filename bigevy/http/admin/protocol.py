"""Wire models of the operator routes: model status and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelStatus(BaseModel):
    id: str
    engine: str
    state: Literal["loading", "ready", "failed", "unknown"]
    error: str | None = None
    deployment: str
    deployment_status: str = Field(description="Ray Serve's view: HEALTHY, UPDATING, ...")
    replicas: dict[str, int] = Field(description="Replica count by Serve replica state.")
    context_length: int
    load_seconds: float | None = None
    requests: int = 0
    active: int = 0
    cancelled: int = 0
    replica: str | None = Field(None, description="The replica that answered for the model.")
    tokens_generated: int = Field(0, description="Reported by the replica that answered.")
    tokens_per_second: float = Field(0.0, description="Decode speed of that replica.")
    memory_bytes: int | None = Field(None, description="Resident memory of that replica.")


class ModelStatusList(BaseModel):
    data: list[ModelStatus]


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(description="Model id -> state.")
    deployments: dict[str, str] = Field(description="Serve deployment -> status.")
    checked_at: float = Field(description="When this was read (Unix s); read every few s.")


class Liveness(BaseModel):
    alive: Literal[True] = True
