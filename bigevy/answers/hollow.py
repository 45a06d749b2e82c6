"""Generated sentences that say nothing a phone user can use: the question said back, or a bare
yes or no. They are taken out of a generative answer before its support is checked."""

from __future__ import annotations

import re

from bigevy.answers.sentences import join, sentences

_WORD = re.compile(r"[^\W_]+")


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
