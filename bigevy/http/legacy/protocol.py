"""Wire models of the EVY prototype's routes, kept so deployed lilEVY clients keep working."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bigevy.config import MAX_OUTPUT_TOKENS
from bigevy.http.knowledge.protocol import NonBlank
from bigevy.knowledge.taxonomy import Category, Source

#: The metadata keys `/search` can filter on, and the search filter each one becomes.
FILTER_KEYS = ("category", "source", "region", "language")


class LegacyGenerateRequest(BaseModel):
    """`POST /llm/generate` as the prototype's lilEVY client sends it."""

    # Old clients send fields we no longer use.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    prompt: NonBlank = Field(min_length=1, max_length=8000)
    context: str | None = Field(None, max_length=8000, description="Grounding text, if any.")
    max_length: int = Field(
        256, ge=1, le=MAX_OUTPUT_TOKENS, description="Tokens to generate at most."
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    model: str | None = None


class LegacyGenerateResponse(BaseModel):
    response: str
    model_used: str
    tokens_used: int = Field(description="Prompt plus generated tokens.")
    processing_time: float = Field(description="Seconds.")


class LegacySearchRequest(BaseModel):
    """`POST /search` as the prototype's lilEVY client sends it."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    query: NonBlank = Field(min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=100)
    filter_metadata: dict[str, str | list[str]] | None = Field(
        None, description=f"Exact-match filters on {', '.join(FILTER_KEYS)}."
    )

    @field_validator("filter_metadata")
    @classmethod
    def _known_keys(
        cls, value: dict[str, str | list[str]] | None
    ) -> dict[str, str | list[str]] | None:
        unknown = sorted(set(value or {}) - set(FILTER_KEYS))
        if unknown:
            raise ValueError(
                f"cannot filter on {', '.join(unknown)}; valid keys: {', '.join(FILTER_KEYS)}"
            )
        for key, vocabulary in (("category", Category), ("source", Source)):
            values = (value or {}).get(key, [])
            for item in [values] if isinstance(values, str) else values:
                if item not in vocabulary.__members__:
                    raise ValueError(
                        f"unknown {key} {item!r}; valid: {', '.join(vocabulary.__members__)}"
                    )
        return value

    def filter_values(self, key: str) -> list[str]:
        value = (self.filter_metadata or {}).get(key, [])
        return [value] if isinstance(value, str) else list(value)


class LegacySearchResponse(BaseModel):
    """Three parallel lists, as the prototype returned them: one entry per hit."""

    documents: list[str]
    scores: list[float]
    metadata: list[dict[str, Any]]
