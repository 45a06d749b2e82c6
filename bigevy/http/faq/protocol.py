"""Wire models of the FAQ routes: the entries bigEVY builds from frequent escalations."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FaqEntry(BaseModel):
    id: str
    region: str
    language: str
    question: str = Field(description="The first asking of the group.")
    answer: str = Field(description="The SMS nodes answer it with; empty once withdrawn.")
    grounded: bool = Field(description="Every sentence of the answer is in its sources.")
    count: int = Field(description="Askings so far.")
    last_seen: float
    sources: list[str] = Field(description="The documents the answer was taken from.")
    published: bool = Field(description="Shipped to the region's nodes now.")
    approved: bool = Field(description="An operator approved this answer (`faq.review`).")
    awaiting_review: bool = Field(
        description="With `faq.review` on: an answer backed by sources, not yet approved."
    )


class FaqList(BaseModel):
    data: list[FaqEntry]
