"""Answering a lilEVY escalation: an emergency or a service's number from the knowledge base at
once; else an earlier answer to the same question (the cache), or the passages about it,
answered in the model's mode (extractive: their own sentences; generative: the model's, each
checked against them), fitted to the SMS; nothing vetted about it: "no verified answer".

The service reaches the knowledge base and the models through two protocols (ports.py), so the
same class answers behind the gateway and in one process without Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bigevy.answers.compose import Composed, Composer, Embedder
from bigevy.answers.emergency import (
    SAFETY,
    SAFETY_PASSAGES,
    SERVICES,
    EmergencyNumbers,
    call_line,
    listed_numbers,
    numbers_line,
    services_asked,
)
from bigevy.answers.grounding import (
    Checked,
    drop_unsupported_countries,
    drop_unsupported_quantities,
)
from bigevy.answers.hollow import without_hollow
from bigevy.answers.passages import on_topic
from bigevy.answers.places import gazetteer, region_named
from bigevy.answers.ports import Generator, Retriever
from bigevy.answers.sentences import join, sentences
from bigevy.answers.sms import fit_sms
from bigevy.answers.support import SupportCheck
from bigevy.answers.triage import Triage, topics_named, triage
from bigevy.answers.unverified import base_language, no_verified_answer
from bigevy.background import BackgroundTasks
from bigevy.config import ModelSpec
from bigevy.errors import NotFound
from bigevy.http.evy.protocol import (
    AnswerMode,
    AnswerSentence,
    EmergencyNumber,
    EvyAnswer,
    EvyQuery,
    TriageOut,
)
from bigevy.http.knowledge.protocol import Citation
from bigevy.knowledge.records import Hit, SearchFilters
from bigevy.knowledge.taxonomy import SOURCES, Category
from bigevy.serving.profiles import system_prompt

log = logging.getLogger(__name__)

GROUNDING = (
    "Answer using the numbered sources below when they are relevant, and say so when they "
    "do not answer the question. Never invent phone numbers or facts."
)
#: The system prompt's last part when no passage is about the question (a model configured
#: with `unsourced: allow` only).
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


def _english(language: str) -> bool:
    return base_language(language) == "en"


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
    hits: list[Hit]
    translations: list[Hit | None]

    @property
    def shown(self) -> list[Hit]:
        """The passages as the asker reads them."""
        if not self.translations:
            return self.hits
        return [t or h for h, t in zip(self.hits, self.translations, strict=True)]


class AnswerService:
    """Answers `EvyQuery`s (see the module's docstring)."""

    def __init__(
        self,
        generator: Generator,
        retriever: Retriever,
        embedder: Embedder,
        relevance_floor: float,
    ) -> None:
        self.generator = generator
        self.retriever = retriever
        self.composer = Composer(embedder)
        self.support = SupportCheck(self.composer.embed)  # sharing its cache of sentences
        self.relevance_floor = relevance_floor
        self.emergencies = EmergencyNumbers(retriever)
        # After the reply, not before.
        self._caching = BackgroundTasks("caching an answer")
        self._counting = BackgroundTasks("counting a question for the FAQ")
        gazetteer()  # read now (0.3 s), not while the first question waits

    async def query(self, query: EvyQuery, enrolled_region: str | None = None) -> EvyAnswer:
        """The answer to an escalation. `enrolled_region`: the region the asking node enrolled
        in, if it names one; its FAQ counts the question."""
        answer = await self._answer(query)
        if not answer.triage.emergency and enrolled_region is not None:
            self._counting.start(self._count(query, answer, enrolled_region))
        return answer

    async def _count(self, query: EvyQuery, answer: EvyAnswer, region: str) -> None:
        """Frequent questions become FAQ knowledge for their region's nodes (after the reply:
        the caller never waits for it).

        The region is the one the asking node enrolled in, whatever the request says: a node
        could otherwise publish into any region. A node of no region publishes nowhere (an FAQ
        entry in `global` would ship to every node)."""
        await self.retriever.observe_question(
            query.message,
            answer.sms,
            # Only an answer made of its sources' own sentences can be backed by them word for
            # word (the knowledge service checks it again against the sources as they are
            # now); a model's checked answer is not, nor a refusal.
            answer.answer_mode == "extractive",
            region,
            query.language,
            [c.document_id for c in answer.citations],
        )

    async def _answer(self, query: EvyQuery) -> EvyAnswer:
        started = time.perf_counter()
        profile = system_prompt(query.profile)  # an unknown profile is a 400 before anything
        spec = self.generator.spec(query.model)  # an unknown model is a 404 whatever the message
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
        cached = await self.retriever.cached_answer(key, query.message)
        if cached is not None:
            return _again(cached, started)
        asked_at = time.time()
        answer = await self._ordinary(query, spec, profile, named, started)
        answer.timings["cache_hit"] = 0.0
        if answer.answer_mode != "none" and answer.citations:
            sources = [c.document_id for c in answer.citations]
            self._caching.start(
                self.retriever.remember_answer(
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
        passages = await self._passages(
            query.message, query.language, regions, SOURCES, query.top_k
        )
        timings = {"retrieval_ms": _ms(started)}
        unsourced = spec.answers == "generative" and spec.unsourced == "allow"
        if not passages.hits and not unsourced:
            return _unverified(query, timings, started)
        if spec.answers == "extractive":
            return await self._extractive(query, passages, timings, started)
        return await self._generative(query, spec, profile, passages, regions, timings, started)

    async def _passages(
        self,
        message: str,
        language: str,
        regions: list[str],
        categories: Sequence[Category],
        k: int,
        topic: str | None = None,
    ) -> Passages:
        """The passages about `message` an answer may use (bigevy/answers/passages.py);
        `topic`, English, what an emergency's steps are looked up by.

        The embedding model is English: another language's words score noise ("quelle est
        la capitale de la France" passed the relevance floor against French safety
        documents). So a question in another language is searched by the topics it names, in
        English (triage's vocabulary: "nyoka" -> snakebite), and answered from the
        translations of the documents found; naming no topic, it gets no passage, and the
        asker "no verified answer", rather than a guess.
        """
        english = _english(language)
        if english:
            asked = f"{topic}. {message}" if topic else message
        else:
            asked = ". ".join([topic] if topic else topics_named(message))
            if not asked:
                return Passages(message, [], [])
        filters = SearchFilters(
            categories=[str(c) for c in categories],  # never an earlier answer (faq)
            regions=regions,
            languages=["en"],
        )
        found = await self.retriever.search(asked, "hybrid", filters, k)
        # A list of numbers is no step to take: the emergency lane reads numbers apart.
        hits = on_topic(
            [h for h in found if not listed_numbers(h.text)] if topic else found,
            self.relevance_floor,
        )
        language = base_language(language)
        translations = [] if english else [await self._translation(h, language) for h in hits]
        return Passages(asked, hits, translations)

    async def _translation(self, hit: Hit, language: str) -> Hit | None:
        """The passage's document in the asker's language (`<language>/<id>`, as the starter
        pack names its translations), if there is one."""
        try:
            doc = await self.retriever.get(f"{language}/{hit.document_id}")
        except NotFound:
            return None
        fields = ("title", "text", "source", "url")
        return dataclasses.replace(hit, document_id=doc["id"], **{f: doc[f] for f in fields})

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
            _cited(s.hit for s in composed.sentences),
            _finished(timings, started),
            sms_text=composed.sms,
            mode="extractive",
            sentences=_attributed(composed),
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
        reply = await self.generator.write(query.model, system, user, query.max_tokens)
        answer = await self._checked(query, SOURCE_MARK.sub("", reply.text), hits, regions)
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
        return _reply(
            query,
            answer,
            _cited(h for h in hits if h.document_id in cited),
            _finished(timings, started),
            model=reply.model,
            sentences=backed,
        )

    async def _checked(
        self, query: EvyQuery, answer: str, hits: list[Hit], regions: list[str]
    ) -> str:
        """`answer` without the sentences that name a quantity or a country no passage gives,
        or that say nothing (bigevy/answers/grounding.py, hollow.py)."""
        texts = [f"{h.title}\n{h.text}" for h in hits]
        checked = drop_unsupported_quantities(answer, texts)
        answer = _kept(checked, "a number", query.node_id)
        if hits:
            checked = drop_unsupported_countries(answer, texts, query.message, regions)
            answer = _kept(checked, "a country", query.node_id)
        return without_hollow(query.message, answer)

    async def _backed(
        self, answer: str, hits: list[Hit], node_id: str
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
        return text, [AnswerSentence(text=s.text, document_id=h.document_id) for s, h in kept]

    async def _numbers(
        self, query: EvyQuery, services: tuple[str, ...], region: str | None, started: float
    ) -> EvyAnswer | None:
        """A service's number, as its region's knowledge lists it: the model picked the wrong
        line of a list ("Police: 999 or 112" for the ambulance)."""
        numbers, listing = await self.emergencies.numbers(services, region)
        if not numbers:
            return None
        line = numbers_line(numbers)  # the list's own lines, for the services asked
        return _reply(
            query,
            line,
            _cited(listing),
            _extracted(started),
            mode="extractive",
            sentences=[AnswerSentence(text=line, document_id=listing[0].document_id)],
            numbers=numbers,
        )

    async def _emergency(
        self, query: EvyQuery, found: Triage, region: str | None, started: float
    ) -> EvyAnswer:
        """The numbers to call, then the safety documents' sentences about it: from the
        knowledge base at once, never queued behind the model. `found.topic` (English) finds
        the steps whatever the message's language."""
        assert found.kind is not None, "only emergencies are answered here"
        numbers, listing = await self.emergencies.numbers(SERVICES[found.kind], region)
        language = base_language(query.language)
        call = call_line(numbers, language)
        regions = [region, "global"] if region else ["global"]
        passages = await self._passages(
            query.message, language, regions, SAFETY, SAFETY_PASSAGES, found.topic
        )
        composed = await self.composer.compose(
            passages.asked,
            passages.hits,
            query.max_sms_segments,
            passages.translations,
            lead=call,
        )
        said = [AnswerSentence(text=call, document_id=listing[0].document_id)] if listing else []
        steps = [] if composed is None else [s.hit for s in composed.sentences]
        return _reply(
            query,
            call if composed is None else composed.answer,
            _cited([*listing, *steps]),
            _extracted(started),
            sms_text=None if composed is None else composed.sms,
            mode="extractive",
            sentences=said + ([] if composed is None else _attributed(composed)),
            triaged=TriageOut(emergency=True, kind=found.kind),
            numbers=numbers,
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


def _attributed(composed: Composed) -> list[AnswerSentence]:
    return [AnswerSentence(text=s.text, document_id=s.hit.document_id) for s in composed.sentences]


def _cited(hits: Iterable[Hit]) -> list[Citation]:
    """Each cited document once, in order."""
    first: dict[str, Citation] = {}
    for h in hits:
        first.setdefault(h.document_id, Citation.of(h))
    return list(first.values())


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _finished(timings: dict[str, float], started: float) -> dict[str, float]:
    return {"generation_ms": 0.0, **timings, "total_ms": _ms(started)}


def _extracted(started: float) -> dict[str, float]:
    """Timings of an answer taken from the knowledge base: no generation."""
    done = _ms(started)
    return {"retrieval_ms": done, "generation_ms": 0.0, "total_ms": done}
