"""Wire models of the OpenAI-compatible routes: what existing OpenAI clients send and expect.

Unknown request fields are ignored (clients send many optional ones); bigEVY adds one:
`profile`, the EVY prompt profile (pass it with the openai client as `extra_body`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bigevy.config import MAX_OUTPUT_TOKENS


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str | None = Field(None, description="Model id; the default model if omitted.")
    max_tokens: int | None = Field(
        None, description=f"1 to {MAX_OUTPUT_TOKENS}; default from the model config."
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    repetition_penalty: float | None = Field(
        None, ge=1.0, le=2.0, description="vLLM's extra parameter; default from the model config."
    )
    n: int = Field(1, description="Only 1 is supported.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    profile: str | None = Field(
        None, description="EVY prompt profile: general, technical, educational, analytical, sms."
    )
    user: str | None = None

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class StreamOptions(BaseModel):
    include_usage: bool = False


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @field_validator("content")
    @classmethod
    def _flatten(cls, value: str | list[TextPart] | None) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return "".join(part.text for part in value)
        return value


#: A prompt's characters, at most: above any configured context (about 100k tokens), and small
#: enough that rendering it does not stall a model replica's event loop.
MAX_PROMPT_CHARS = 400_000


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)

    @field_validator("messages")
    @classmethod
    def _bounded(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        total = sum(len(m.content or "") for m in value)
        if total > MAX_PROMPT_CHARS:
            raise ValueError(f"messages hold {total} characters; at most {MAX_PROMPT_CHARS}")
        return value

    max_completion_tokens: int | None = Field(None, description="Alias of max_tokens.")


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _single_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        text = value if isinstance(value, str) else value[0]
        if len(text) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt holds {len(text)} characters; at most {MAX_PROMPT_CHARS}")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    profile: str | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "bigevy"
    #: What the model is for: `chat` models answer /v1/chat/completions and /v1/completions,
    #: `embedding` models /v1/embeddings (OpenAI's card has no such field; clients need it to
    #: pick the id each route takes).
    kind: Literal["chat", "embedding"] = "chat"
    #: Tokens the model reads: prompt plus output for chat, one input for embeddings (longer
    #: inputs are truncated). None where the model's files do not say.
    context_length: int | None
    engine: str
    description: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def model_dump_sse(model: BaseModel) -> str:
    return f"data: {model.model_dump_json(exclude_none=False)}\n\n"


_Request.model_rebuild()
ChatCompletionRequest.model_rebuild()
CompletionRequest.model_rebuild()
