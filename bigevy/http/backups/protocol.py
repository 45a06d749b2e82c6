"""Wire models of the backup routes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BackupOut(BaseModel):
    id: str
    location: str
    created_at: float
    bigevy_version: str
    schema_revision: str | None
    database: str = Field(description="sqlite | postgresql")
    knowledge_revision: int = Field(description="The knowledge base's revision it holds.")
    documents: int
    nodes: int
    files: int
    bytes: int


class BackupList(BaseModel):
    data: list[BackupOut]


class BackupCheck(BaseModel):
    id: str
    ok: bool
    problems: list[str]
