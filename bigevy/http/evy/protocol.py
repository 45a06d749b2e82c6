"""Wire models of `POST /v1/evy/query`: a lilEVY escalation, and its grounded answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bigevy.answers.triage import EmergencyKind
from bigevy.config import MAX_OUTPUT_TOKENS
from bigevy.http.knowledge.protocol import Citation, NonBlank


class EvyQuery(BaseModel):
    """A question a lilEVY node could not answer locally (escalated over its uplink)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    node_id: str = Field(min_length=1, max_length=128)
    message: NonBlank = Field(min_length=1, max_length=1600, description="The SMS text asked.")
    language: str = Field("en", min_length=2, max_length=16)
    region: str | None = Field(
        None,
        max_length=100,  # as a node's region: the escalation's record keeps it
        description=(
            "Where the asker is: knowledge of this region, of a place the message names and "
            "global knowledge answer; never another region's. Default: the node's enrolled "
            "region, else the place the message names."
        ),
    )
    profile: str = "general"
    max_sms_segments: int = Field(1, ge=1, le=10)
    model: str | None = None
    max_tokens: int = Field(
        256,
        ge=1,
        le=MAX_OUTPUT_TOKENS,
        description="Cap on the full answer (an SMS needs far fewer).",
    )
    top_k: int = Field(3, ge=1, le=20, description="Passages given to the model.")


class EmergencyNumber(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str = Field(description="police, ambulance, fire, emergency, red cross")
    number: str


class TriageOut(BaseModel):
    emergency: bool
    kind: EmergencyKind | None = None


#: How an escalation's answer was made (see EvyAnswer.answer_mode).
AnswerMode = Literal["extractive", "generative", "none"]


class AnswerSentence(BaseModel):
    text: str
    document_id: str = Field(description="The cited document the sentence comes from.")


class EvyAnswer(BaseModel):
    answer: str = Field(description=f"The full answer (at most {MAX_OUTPUT_TOKENS} tokens).")
    sms: str = Field(description="The answer cut to fit max_sms_segments.")
    sms_segments: int
    sms_encoding: Literal["GSM-7", "UCS-2"]
    citations: list[Citation]
    model: str = Field(description="The model that wrote `answer`, or `knowledge-base`.")
    answer_mode: AnswerMode = Field(
        description="extractive: the answer is the cited documents' own sentences; generative: "
        "a model trusted to write wrote it from them, each sentence checked; none: nothing "
        "vetted answers the question, and the reply says so and where to ask."
    )
    sentences: list[AnswerSentence] = Field(
        default=[], description="The answer's sentences, each with the document it came from."
    )
    triage: TriageOut
    emergency_numbers: list[EmergencyNumber] = Field(
        default=[],
        description=(
            "For an emergency, or a question asking for a service's number: the numbers the "
            "knowledge base lists for the region."
        ),
    )
    timings: dict[str, float] = Field(description="Milliseconds: retrieval, generation, total.")
