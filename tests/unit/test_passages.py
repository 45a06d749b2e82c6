"""Which passages an escalation's answer may use: about the question, not far behind the best."""

from __future__ import annotations

from bigevy.answers.passages import on_topic
from bigevy.knowledge.records import Hit


def hit(doc: str, score: float, similarity: float | None) -> Hit:
    return Hit(f"{doc}#0", doc, doc, "text", "", "emergency", "local", score, similarity)


def test_passages_below_the_floor_or_far_behind_the_best_are_left_out() -> None:
    # Scores seen for "what should i do during a thunderstorm" over the starter pack.
    hits = [hit("lightning", 1.42, 0.65), hit("cyclone", 0.88, 0.52), hit("earthquake", 0.29, 0.38)]
    assert [h.document_id for h in on_topic(hits, 0.3)] == ["lightning", "cyclone"]
    assert [h.document_id for h in on_topic(hits, 0.6)] == ["lightning"]
    assert [h.document_id for h in on_topic(hits, 0.3, relative=0.0)] == [
        "lightning",
        "cyclone",
        "earthquake",
    ]


def test_a_question_nothing_is_about_gets_no_passage() -> None:
    # "pls help what is the capital of france": the best match was CPR.
    hits = [hit("cpr", 1.05, 0.06), hit("emergency-numbers", 0.81, 0.17)]
    assert on_topic(hits, 0.3) == []
    assert on_topic([hit("keyword-only", 2.0, None)], 0.3) == []
    assert on_topic([], 0.3) == []


def test_the_best_is_measured_among_the_passages_kept() -> None:
    hits = [hit("off", 3.0, 0.1), hit("on", 1.0, 0.5), hit("weak", 0.6, 0.4)]
    assert [h.document_id for h in on_topic(hits, 0.3)] == ["on", "weak"]
    # Nothing stands out of the candidates (scores are z-scores): the best alone.
    flat = [hit("a", -0.1, 0.5), hit("b", -0.2, 0.5)]
    assert [h.document_id for h in on_topic(flat, 0.3)] == ["a"]
