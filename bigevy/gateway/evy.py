"""Answering a lilEVY escalation: an emergency or a service's number from the knowledge base at
once; else an earlier answer to the same question (the cache), or the passages about it,
answered in the model's mode (extractive: their own sentences; generative: the model's, each
checked against them), fitted to the SMS; nothing vetted about it: "no verified answer"."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bigevy.answers.compose import Composer, Embedder
from bigevy.answers.support import SupportCheck
from bigevy.answers.unverified import base_language, no_verified_answer
from bigevy.api.knowledge import (
    AnswerMode,
    AnswerSentence,
    Citation,
    EmergencyNumber,
    EvyAnswer,
    EvyQuery,
    SearchHit,
    SearchRequest,
    TriageOut,
)
from bigevy.api.openai import ChatCompletion, ChatCompletionRequest, ChatMessage
from bigevy.config import ModelSpec
from bigevy.errors import NotFound
from bigevy.gateway.background import BackgroundTasks
from bigevy.gateway.emergency import EmergencyResponder, numbers_line, services_asked
from bigevy.gateway.knowledge import KnowledgeGateway
from bigevy.gateway.service import OpenAIService
from bigevy.grounding import Checked, drop_unsupported_countries, drop_unsupported_quantities
from bigevy.knowledge.taxonomy import SOURCES
from bigevy.passages import on_topic
from bigevy.places import gazetteer, region_named
from bigevy.sentences import join, sentences
from bigevy.serving.profiles import system_prompt
from bigevy.sms import fit_sms
from bigevy.triage import Triage, topics_named, triage

log = logging.getLogger(__name__)

GROUNDING = (
    "Answer using the numbered sources below when they are relevant, and say so when they "
    "do not answer the question. Never invent phone numbers or facts."
)
#: The system prompt's last part when no passage is about the question (bigevy/passages.py).
NO_SOURCES = (
    "No verified source covers this question. Answer briefly if you know, say so if you do "
    "not, and never invent phone numbers or facts."
)
PASSAGE_CHARS = 600
#: The languages nodes escalate in, as a `multilingual` model is told to answer in them.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "pt": "Portuguese",
    "sw": "Swahili",
}
#: "[4]": how the prompt numbers its sources. Small models copy the marks into the answer,
#: where they point at nothing the user sees (the citations are listed apart, deduplicated).
SOURCE_MARK = re.compile(r"\s*\[\d{1,2}\](?!\w)")
#: `model` of an answer taken from the knowledge base without a language model.
KNOWLEDGE_BASE = "knowledge-base"


_WORD = re.compile(r"[^\W_]+")


def _english(language: str) -> bool:
    return base_language(language) == "en"


def echoes(question: str, answer: str) -> bool:
    """Whether `answer` only says the question's words back (seen from SmolLM2-135M: asked
    "the clinic is closed, where can I get malaria tablets", it answered just that)."""
    asked = _WORD.findall(question.lower())
    said = _WORD.findall(answer.lower())
    if len(said) >= 3 and all(word in asked or len(word) < 4 for word in said):
        return True
    # Or the whole question quoted in a short frame: 'The answer to the question is: "Mtoto
    # wangu anaharisha, nifanye nini?"' (seen from SmolLM2-135M, asked in Swahili).
    n = len(asked)
    quoted = any(said[i : i + n] == asked for i in range(len(said) - n + 1))
    return n >= 3 and quoted and len(said) - n <= 6


#: Yes and no in the languages nodes escalate in (en, es, fr, pt, sw).
VERDICTS = frozenset(
    {"yes", "no", "si", "sí", "oui", "non", "sim", "não", "nao", "ndiyo", "ndio", "hapana"}
)
#: Words that frame a verdict without adding to it ("The answer to this question is: No.").
VERDICT_FRAME = frozenset(
    {"answer", "question", "this", "that", "cannot", "respuesta", "pregunta", "réponse"}
    | {"resposta", "pergunta", "jibu", "swali"}
)


def verdict_only(question: str, answer: str) -> bool:
    """Whether `answer` is a bare yes or no: nothing a user can act on or check, and from a
    small model a coin toss (SmolLM2-135M, asked "can i get help rebuilding" after a fire: "No,
    you cannot."; with sources saying the opposite: "No, the answer is no.")."""
    asked = set(_WORD.findall(question.lower()))
    said = _WORD.findall(answer.lower())
    return any(word in VERDICTS for word in said) and all(
        word in VERDICTS
        or word in VERDICT_FRAME
        or word in asked
        or (len(word) < 4 and not any(c.isdigit() for c in word))
        for word in said
    )


def hollow(question: str, text: str) -> bool:
    """Whether `text` says nothing the asker can use: the question said back, or a bare yes
    or no."""
    return echoes(question, text) or verdict_only(question, text)


def without_hollow(question: str, answer: str) -> str:
    """`answer` without the sentences that say nothing (`hollow`), and empty if that is all it
    says. Seen: "quanto custa um extintor - 1." before the answer itself and, cut to a
    70-character UCS-2 SMS, all the SMS said; "No, the answer is no." opening an answer, and
    so the whole SMS. A lead-in ("The signs of malaria are:") stays."""
    if hollow(question, answer):
        return ""
    split = sentences(answer)
    kept = [s for s in split if s.text.endswith(":") or not hollow(question, s.text)]
    return join(kept) if len(kept) < len(split) else answer


def _kept(checked: Checked, what: str, node_id: str) -> str:
    if checked.dropped:
        log.warning(
            "dropped %d sentence(s) naming %s no source gives (node %s)",
            len(checked.dropped),
            what,
            node_id,
        )
    return checked.text


@dataclass(frozen=True)
class Passages:
    """What an answer may draw on: the passages found for `asked` (the question, or for another
    language than English the topics it names), best first, and each one's translation into
    the asker's language where there is one."""

    asked: str
    hits: list[SearchHit]
    translations: list[SearchHit | None]

    @property
    def shown(self) -> list[SearchHit]:
        """The passages as the asker reads them."""
        if not self.translations:
            return self.hits
        return [t or h for h, t in zip(self.hits, self.translations, strict=True)]


class EvyService:
    def __init__(
        self,
        llm: OpenAIService,
        knowledge: KnowledgeGateway,
        embedder: Embedder,
        relevance_floor: float,
    ) -> None:
        self.llm = llm
        self.knowledge = knowledge
        self.composer = Composer(embedder)
        self.support = SupportCheck(self.composer.embed)  # sharing its cache of sentences
        self.relevance_floor = relevance_floor
        self.emergencies = EmergencyResponder(knowledge)
        self._caching = BackgroundTasks("caching an answer")  # after the reply, not before
        gazetteer()  # read now (0.3 s), not while the first question waits

    async def query(self, query: EvyQuery) -> EvyAnswer:
        started = time.perf_counter()
        profile = system_prompt(query.profile)  # an unknown profile is a 400 before anything
        spec, _ = self.llm.resolve(query.model)  # an unknown model is a 404 whatever the message
        found = triage(query.message)
        named = region_named(query.message)
        if found.emergency and found.kind is not None:
            log.warning(
                "emergency (%s) escalated by node %s: %s", found.kind, query.node_id, found.cues
            )
            # The numbers to call are the asker's: a place named only stands in for no region.
            return await self._emergency(query, found, query.region or named, started)
        services = services_asked(query.message)
        if services is not None:
            # Asked where, the place named comes first: "police number in accra" from anywhere.
            answer = await self._numbers(query, services, named or query.region, started)
            if answer is not None:
                return answer
        # Everything besides the question's words that changes an answer.
        key = {
            "region": query.region,
            "named": named,
            "language": base_language(query.language),
            "profile": query.profile,
            "segments": query.max_sms_segments,
            "model": spec.id,
            "top_k": query.top_k,
            "max_tokens": query.max_tokens,
        }
        cached = await self.knowledge.backend.cached_answer(key, query.message)
        if cached is not None:
            return _again(cached, started)
        asked_at = time.time()
        answer = await self._ordinary(query, spec, profile, named, started)
        answer.timings["cache_hit"] = 0.0
        if answer.answer_mode != "none" and answer.citations:
            sources = [c.document_id for c in answer.citations]
            self._caching.start(
                self.knowledge.backend.remember_answer(
                    key, query.message, answer.model_dump(mode="json"), sources, asked_at
                )
            )
        return answer

    async def _ordinary(
        self, query: EvyQuery, spec: ModelSpec, profile: str, named: str | None, started: float
    ) -> EvyAnswer:
        """An answer from the knowledge base's passages, in the model's answer mode."""
        # Knowledge of the node's region, of a place the message names, and of everywhere.
        # Never another region's: without a region "ambulance in kampala" cited Ghana's numbers.
        regions = list(dict.fromkeys(r for r in (query.region, named, "global") if r))
        passages = await self._passages(query, regions)
        timings = {"retrieval_ms": _ms(started)}
        unsourced = spec.answers == "generative" and spec.unsourced == "allow"
        if not passages.hits and not unsourced:
            return _unverified(query, timings, started)
        if spec.answers == "extractive":
            return await self._extractive(query, passages, timings, started)
        return await self._generative(query, spec, profile, passages, regions, timings, started)

    async def _passages(self, query: EvyQuery, regions: list[str]) -> Passages:
        """The passages about the question an answer may use (bigevy/passages.py).

        The embedding model is English: another language's words score noise ("quelle est
        la capitale de la France" passed the relevance floor against French safety
        documents). So a question in another language is searched by the topics it names, in
        English (triage's vocabulary: "nyoka" -> snakebite), and answered from the
        translations of the documents found; naming no topic, it gets no passage, and the
        asker "no verified answer", rather than a guess.
        """
        english = _english(query.language)
        topics = [] if english else topics_named(query.message)
        if not english and not topics:
            return Passages(query.message, [], [])
        search = SearchRequest(
            query=query.message if english else ". ".join(topics),
            top_k=query.top_k,
            categories=SOURCES,  # never an earlier answer (faq)
            regions=regions,
            languages=["en"],
        )
        hits = on_topic((await self.knowledge.search(search)).hits, self.relevance_floor)
        language = base_language(query.language)
        translations = [] if english else [await self._translation(h, language) for h in hits]
        return Passages(search.query, hits, translations)

    async def _translation(self, hit: SearchHit, language: str) -> SearchHit | None:
        """The passage's document in the asker's language (`<language>/<id>`, as the starter
        pack names its translations), if there is one."""
        try:
            doc = await self.knowledge.get(f"{language}/{hit.citation.document_id}")
        except NotFound:
            return None
        citation = Citation(document_id=doc.id, title=doc.title, source=doc.source, url=doc.url)
        return hit.model_copy(update={"text": doc.text, "citation": citation})

    async def _extractive(
        self,
        query: EvyQuery,
        passages: Passages,
        timings: dict[str, float],
        started: float,
    ) -> EvyAnswer:
        """The passages' own sentences that answer the question (bigevy/answers/compose.py)."""
        composing = time.perf_counter()
        composed = await self.composer.compose(
            passages.asked, passages.hits, query.max_sms_segments, passages.translations
        )
        if composed is None:
            return _unverified(query, timings, started)
        timings["compose_ms"] = _ms(composing)
        return _reply(
            query,
            composed.answer,
            _cited(s.citation for s in composed.sentences),
            _finished(timings, started),
            sms_text=composed.sms,
            mode="extractive",
            sentences=[
                AnswerSentence(text=s.text, document_id=s.citation.document_id)
                for s in composed.sentences
            ],
        )

    async def _generative(
        self,
        query: EvyQuery,
        spec: ModelSpec,
        profile: str,
        passages: Passages,
        regions: list[str],
        timings: dict[str, float],
        started: float,
    ) -> EvyAnswer:
        """A model trusted to write answers from the passages; its sentences are checked."""
        hits = passages.shown
        # One line per passage, whitespace collapsed: small models copy line breaks and
        # headings into their answer (seen with SmolLM2-135M).
        sources = "\n".join(
            f"[{i}] {' '.join(hit.text.split())[:PASSAGE_CHARS]}" for i, hit in enumerate(hits, 1)
        )
        user = f"Sources:\n{sources}\n\nQuestion: {query.message}" if sources else query.message
        system = f"{profile}\n\n{GROUNDING if sources else NO_SOURCES}"
        language = LANGUAGE_NAMES.get(base_language(query.language))
        if spec.multilingual and language:
            system += f" Answer in {language}."
        reply = await self.llm.chat(
            ChatCompletionRequest(
                model=query.model,
                messages=[
                    ChatMessage(role="system", content=system),
                    ChatMessage(role="user", content=user),
                ],
                max_tokens=query.max_tokens,
                temperature=0.2,
            )
        )
        assert isinstance(reply, ChatCompletion)  # not streamed
        texts = [f"{h.citation.title}\n{h.text}" for h in hits]
        answer = _kept(
            drop_unsupported_quantities(
                SOURCE_MARK.sub("", reply.choices[0].message.content), texts
            ),
            "a number",
            query.node_id,
        )
        if hits:
            checked = drop_unsupported_countries(answer, texts, query.message, regions)
            answer = _kept(checked, "a country", query.node_id)
        answer = without_hollow(query.message, answer)
        backed: list[AnswerSentence] = []
        if hits and answer:
            answer, backed = await self._backed(answer, hits, query.node_id)
        timings["generation_ms"] = _ms(started) - timings["retrieval_ms"]
        if not answer and hits:  # the sources' own sentences rather than nothing or a hollow one
            return await self._extractive(query, passages, timings, started)
        if not answer:
            return _unverified(query, timings, started)
        # The documents that back a kept sentence, and no other.
        cited = {s.document_id for s in backed}
        citations = _cited(h.citation for h in hits if h.citation.document_id in cited)
        return _reply(
            query,
            answer,
            citations,
            _finished(timings, started),
            model=reply.model,
            sentences=backed,
        )

    async def _backed(
        self, answer: str, hits: list[SearchHit], node_id: str
    ) -> tuple[str, list[AnswerSentence]]:
        """`answer` without the sentences its passages do not back (bigevy/answers/support.py),
        and each kept sentence with the document that backs it."""
        split = sentences(answer)
        found = await self.support.supported([s.text for s in split], [h.text for h in hits])
        kept = [(s, hits[i]) for s, i in zip(split, found, strict=True) if i is not None]
        if len(kept) < len(split):
            log.warning(
                "dropped %d sentence(s) the sources do not back (node %s)",
                len(split) - len(kept),
                node_id,
            )
        text = join(s for s, _ in kept)
        return text, [
            AnswerSentence(text=s.text, document_id=h.citation.document_id) for s, h in kept
        ]

    async def _numbers(
        self, query: EvyQuery, services: tuple[str, ...], region: str | None, started: float
    ) -> EvyAnswer | None:
        """A service's number, as its region's knowledge lists it: the model picked the wrong
        line of a list ("Police: 999 or 112" for the ambulance)."""
        numbers, citations = await self.emergencies.numbers(services, region)
        if not numbers:
            return None
        line = numbers_line(numbers)  # the list's own lines, for the services asked
        return _reply(
            query,
            line,
            citations,
            _extracted(started),
            mode="extractive",
            sentences=[AnswerSentence(text=line, document_id=citations[0].document_id)],
            numbers=numbers,
        )

    async def _emergency(
        self, query: EvyQuery, found: Triage, region: str | None, started: float
    ) -> EvyAnswer:
        """Answered from the knowledge base at once: never queued behind the model."""
        reply = await self.emergencies.reply(query.message, found, region, query.language)
        return _reply(
            query,
            reply.answer,
            reply.citations,
            _extracted(started),
            sms_text=reply.sms_text,
            mode="extractive",
            triaged=TriageOut(emergency=True, kind=found.kind),
            numbers=reply.numbers,
        )


def _reply(
    query: EvyQuery,
    answer: str,
    citations: list[Citation],
    timings: dict[str, float],
    *,
    sms_text: str | None = None,
    model: str = KNOWLEDGE_BASE,
    mode: AnswerMode = "generative",
    sentences: list[AnswerSentence] | None = None,
    triaged: TriageOut | None = None,
    numbers: list[EmergencyNumber] | None = None,
) -> EvyAnswer:
    """`answer` with its SMS (cut from `sms_text` if given) in the segments asked for."""
    sms = fit_sms(sms_text or answer, query.max_sms_segments)
    return EvyAnswer(
        answer=answer,
        sms=sms.text,
        sms_segments=sms.segments,
        sms_encoding=sms.encoding,
        citations=citations,
        model=model,
        answer_mode=mode,
        sentences=sentences or [],
        triage=triaged or TriageOut(emergency=False),
        emergency_numbers=numbers or [],
        timings=timings,
    )


def _again(cached: dict[str, Any], started: float) -> EvyAnswer:
    """An earlier answer to the same question (bigevy/answers/cache.py), timed as this one."""
    done = _ms(started)
    timings = {"retrieval_ms": 0.0, "generation_ms": 0.0, "total_ms": done, "cache_hit": 1.0}
    return EvyAnswer(**{**cached, "timings": timings})


def _unverified(query: EvyQuery, timings: dict[str, float], started: float) -> EvyAnswer:
    """Nothing vetted answers the question: say so, in the asker's language, and where to ask."""
    answer = no_verified_answer(query.language)
    return _reply(query, answer, [], _finished(timings, started), mode="none")


def _cited(citations: Iterable[Citation]) -> list[Citation]:
    """Each cited document once, in order."""
    first: dict[str, Citation] = {}
    for citation in citations:
        first.setdefault(citation.document_id, citation)
    return list(first.values())


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _finished(timings: dict[str, float], started: float) -> dict[str, float]:
    return {"generation_ms": 0.0, **timings, "total_ms": _ms(started)}


def _extracted(started: float) -> dict[str, float]:
    """Timings of an answer taken from the knowledge base: no generation."""
    done = _ms(started)
    return {"retrieval_ms": done, "generation_ms": 0.0, "total_ms": done}
