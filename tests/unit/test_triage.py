"""Emergency triage of SMS: the prototype's false positives stay quiet, real emergencies in
every supported language are caught with the right kind, and the held-out split of the
labelled set keeps its precision and recall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bigevy.answers.emergency import services_asked
from bigevy.answers.triage import Triage, topics_named, triage

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "triage_messages.jsonl"


@pytest.mark.parametrize(
    "message",
    [
        "can you help me with my homework",
        "smoke alarm beeping low battery",
        "weather alert tonight?",
        "what is the police number",
        "what causes earthquakes",
        "fire drill at school tomorrow",
    ],
)
def test_prototype_false_positives_are_not_emergencies(message: str) -> None:
    result = triage(message)
    assert not result.emergency
    assert result.kind is None
    assert result.score < 0.5


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("my baby is not breathing", "medical"),
        ("house on fire help", "fire"),
        ("man with knife outside our door", "police"),
        ("water rising fast in our house we are trapped", "disaster"),
        ("what is the ambulance number my father collapsed", "medical"),
        ("HLP PLZ SNAKE BIT MY SON", "medical"),
        ("au secours mon fils ne respire plus", "medical"),
        ("la maison du voisin brûle", "fire"),
        ("des voleurs armés chez nous venez vite", "police"),
        ("incendio en mi casa ayuda", "fire"),
        ("mi hija se desmayó y no responde", "medical"),
        ("terremoto se cayó el edificio", "disaster"),
        ("socorro meu pai desmaiou", "medical"),
        ("tem ladrões armados na minha casa agora", "police"),
        ("enchente a água está subindo rápido", "disaster"),
        ("moto nyumbani msaada", "fire"),
        ("mtoto hapumui tusaidie", "medical"),
        ("mafuriko tumekwama juu ya paa", "disaster"),
    ],
)
def test_clear_emergencies_in_every_language(message: str, kind: str) -> None:
    result = triage(message)
    assert result.emergency, result
    assert result.kind == kind
    assert result.score >= 0.5
    assert result.cues


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("my baby is not breathing", "CPR for someone not breathing or unconscious"),
        ("mtoto hapumui tusaidie", "CPR for someone not breathing or unconscious"),
        ("au secours mon fils ne respire plus", "CPR for someone not breathing or unconscious"),
        ("socorro meu pai desmaiou", "CPR for someone not breathing or unconscious"),
        ("HLP PLZ SNAKE BIT MY SON", "snakebite"),
        ("nyoka amemuuma mtoto wangu msaada", "snakebite"),
        ("incendio en mi casa ayuda", "fire in the home escape the smoke"),
        ("moto nyumbani msaada", "fire in the home escape the smoke"),
        ("enchente a água está subindo rápido", "flood safety rising water"),
        ("terremoto se cayó el edificio", "earthquake"),
        ("des voleurs armés chez nous venez vite", "calling for emergency help, stay safe"),
    ],
)
def test_an_emergency_names_its_safety_topic_in_english(message: str, topic: str) -> None:
    """The safety steps are found by this topic, whatever language the message is in."""
    assert triage(message).topic == topic


def test_no_topic_for_what_is_not_an_emergency() -> None:
    assert triage("how do I treat a snake bite").topic is None


def test_an_ordinary_question_names_its_topics_in_english_too() -> None:
    """What leads the search for a question in another language (the embedding model is
    English); a question's topics do not make it an emergency."""
    assert topics_named("Je, ninawezaje kujikinga na nyoka shambani?") == ["snakebite"]
    assert topics_named("Comment rendre l'eau potable au village ?") == [
        "making water safe to drink"
    ]
    assert topics_named("mon bébé a la diarrhée depuis hier, et le paludisme ?") == [
        "diarrhoea and dehydration",
        "malaria",
    ]
    assert topics_named("Bonjour, ça va ?") == []
    assert not triage("que faire contre la diarrhée").emergency
    # Everyday words for the pack's topics (answers/topic_words.json).
    assert topics_named("como fazer massagem cardiaca") == ["CPR chest compressions rescue breaths"]
    assert topics_named("dónde refugiarse de los rayos") == ["lightning thunderstorm"]


def test_words_are_not_corrected_into_other_words() -> None:
    """One letter from a lexicon's word, but a word of its own: fish is not poison, and first
    aid is no cry for help."""
    assert topics_named("je voudrais du poisson grillé") == []
    assert not triage("primeiros socorros para queimadura").emergency
    assert not triage("curso de primeros auxilios").emergency


@pytest.mark.parametrize("message", ["", "   ", "\n\t"])
def test_empty_message_is_not_an_emergency(message: str) -> None:
    assert triage(message) == Triage(False, None, 0.0, ())


def test_typos_and_shouting_still_count() -> None:
    assert triage("huose on fier hlp").kind == "fire"
    assert triage("he is unconcious").kind == "medical"
    assert triage("HELPPP THIEVES IN THE HOUSE").kind == "police"


def test_same_message_same_verdict() -> None:
    assert triage("help car crash on the main road people bleeding") == triage(
        "help car crash on the main road people bleeding"
    )


def test_labelled_test_split_precision_and_recall() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]
    held_out = [r for r in rows if r["split"] == "test"]
    assert len(held_out) >= 100
    predicted = [(triage(r["text"]).emergency, r["emergency"]) for r in held_out]
    tp = sum(p and t for p, t in predicted)
    fp = sum(p and not t for p, t in predicted)
    fn = sum(t and not p for p, t in predicted)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.9, f"precision {precision:.3f}"
    assert recall >= 0.9, f"recall {recall:.3f}"


@pytest.mark.parametrize(
    ("message", "services"),
    [
        ("whats the number for ambulance service in kampala", ("ambulance",)),
        ("numéro de la police et des pompiers", ("police", "fire")),
        ("nambari ya zima moto", ("fire",)),
        ("what are the emergency phone numbers", ()),  # every number listed
        ("should I call an ambulance for a fever", None),  # advice, not a number
        ("history of the fire brigade", None),
        ("phone number of the poison control hotline", None),  # no service listed by name
    ],
)
def test_the_services_whose_number_a_question_asks_for(
    message: str, services: tuple[str, ...] | None
) -> None:
    assert services_asked(message) == services
