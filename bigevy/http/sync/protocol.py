"""Wire models of edge sync: subscriptions, signed manifests, acknowledgements, sync state."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bigevy.knowledge.taxonomy import Category


class SubscriptionIn(BaseModel):
    """What a node should hold. Empty lists mean: every category / language, and for regions
    the node's own region; entries of region "global" always match."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    categories: list[Category] = Field(default=[], max_length=len(Category))
    regions: list[str] = Field(default=[], max_length=100)
    languages: list[str] = Field(default=[], max_length=50)
    budget_mb: float | None = Field(
        None, gt=0, le=1_000_000, description="Knowledge budget in MiB; default: the server's."
    )
    shares: (
        dict[
            Literal["emergency", "weather_safety", "healthcare", "essential_services", "community"],
            float,
        ]
        | None
    ) = Field(None, description="Share of the budget per group; default the seed's.")


class SubscriptionOut(BaseModel):
    node_id: str
    categories: list[str] = Field(description="Empty: every category.")
    regions: list[str]
    languages: list[str] = Field(description="Empty: every language.")
    budget_mb: float
    shares: dict[str, float]
    custom: bool = Field(description="False: the server's defaults apply.")


class SignedManifest(BaseModel):
    """Verify `signature` (Ed25519, base64) over the UTF-8 bytes of `manifest`, then parse it:
    the manifest is the exact JSON text that was signed (docs/package-format.md)."""

    package_id: str
    manifest: str
    signature: str
    download_url: str


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    package_id: str = Field(min_length=1, max_length=64)
    revision: int = Field(ge=0, description="The manifest's to_revision, now applied.")
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SyncErrorIn(BaseModel):
    """A node could not apply a package (it keeps its old knowledge and says why)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    package_id: str | None = Field(None, max_length=64)
    error: str = Field(min_length=1, max_length=500)


class SyncState(BaseModel):
    node_id: str
    acked_revision: int = Field(description="Knowledge revision the node last applied.")
    acked_package_id: str | None
    acked_at: float | None
    current_revision: int = Field(description="The knowledge base's revision now.")
    lag_revisions: int
    lag_s: float = Field(description="Age of the oldest change the node has not applied.")
    pending_package_id: str | None = Field(description="Built, not yet acknowledged.")
    last_error: str | None
    last_error_at: float | None


class SyncStateList(BaseModel):
    data: list[SyncState]
    total: int
