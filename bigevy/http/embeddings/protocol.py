"""Wire models of `POST /v1/embeddings` (OpenAI's shape)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _texts_only(value: Any) -> Any:
    """Checked before the union, so one clear error names `input` (not a union branch)."""
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return value
    raise ValueError("input must be a string or a list of strings (token ids are not accepted)")


#: One text's characters, at most (the model reads its first 256 tokens; tokenising a
#: megabyte to use a thousand characters of it is work for nothing).
MAX_INPUT_CHARS = 50_000


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    input: Annotated[str | list[str], BeforeValidator(_texts_only)] = Field(
        description="One text or a list of texts."
    )
    model: str | None = Field(None, description="The embedder id; the configured one if omitted.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("input must hold at least one text")
        if any(not text.strip() for text in texts):
            raise ValueError("input texts must not be empty")
        if any(len(text) > MAX_INPUT_CHARS for text in texts):
            raise ValueError(f"an input text holds more than {MAX_INPUT_CHARS} characters")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 LE bytes.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
