"""The answer service's generator (bigevy/answers/ports.py) over the OpenAI-compatible service:
one chat completion, with the same model resolution, limits and profiles as the routes."""

from __future__ import annotations

from bigevy.answers.ports import Written
from bigevy.config import ModelSpec
from bigevy.http.openai.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage
from bigevy.http.openai.serving import OpenAIService

#: Low: an answer restates its sources, it does not improvise on them.
TEMPERATURE = 0.2


class ChatWriter:
    def __init__(self, service: OpenAIService) -> None:
        self.service = service

    def spec(self, model: str | None) -> ModelSpec:
        spec, _ = self.service.resolve(model)
        return spec

    async def write(
        self, model: str | None, system: str, user: str, max_tokens: int | None
    ) -> Written:
        reply = await self.service.chat(
            ChatCompletionRequest(
                model=model,
                messages=[
                    ChatMessage(role="system", content=system),
                    ChatMessage(role="user", content=user),
                ],
                max_tokens=max_tokens,
                temperature=TEMPERATURE,
            )
        )
        assert isinstance(reply, ChatCompletion)  # not streamed
        return Written(text=reply.choices[0].message.content, model=reply.model)
