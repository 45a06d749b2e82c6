"""What a small model got wrong never reaches a phone: answers seen from SmolLM2-135M."""

from __future__ import annotations

from bigevy.answers.grounding import (
    drop_unsupported_countries,
    drop_unsupported_numbers,
    drop_unsupported_quantities,
    phone_numbers,
    quantities,
)
from bigevy.answers.hollow import echoes, verdict_only, without_hollow
from bigevy.answers.service import SOURCE_MARK
from bigevy.answers.sms import fit_sms

STARTER = [
    "Malaria: fever, chills and headache after a mosquito bite. Go to a clinic the same day.",
    "Emergency numbers in Kenya: police, ambulance and fire 999 or 112; Red Cross 1199.",
]


def test_an_invented_toll_free_number_is_dropped_with_its_sentence() -> None:
    answer = (
        "You should consult a doctor immediately, as the child's high fever may be malaria. "
        "If you have any concerns please call 1-800-672-3459 (TALK)."
    )
    checked = drop_unsupported_numbers(answer, STARTER)
    assert checked.text == (
        "You should consult a doctor immediately, as the child's high fever may be malaria."
    )
    assert checked.dropped == ["If you have any concerns please call 1-800-672-3459 (TALK)."]


def test_numbers_the_sources_give_stay_however_they_are_written() -> None:
    answer = "Call 112 now. If the line is busy, dial 999. The Red Cross answers on 11 99."
    checked = drop_unsupported_numbers(answer, STARTER)
    assert checked.text == answer and checked.dropped == []


def test_a_short_number_to_call_from_elsewhere_is_dropped() -> None:
    checked = drop_unsupported_numbers("Call 911 right away. Keep the person warm.", STARTER)
    assert checked.text == "Keep the person warm."
    # Seen: the sources' lists of numbers garbled into new ones
    garbled = "1. 102 - Police: 984 2. 356 - Fire: 729 3. 112 - Ambulance: 999 or 112."
    kept = drop_unsupported_numbers(garbled, STARTER).text
    assert kept == "3. 112 - Ambulance: 999 or 112."  # item 3 of the list, as written
    assert fit_sms(kept).text == "112 - Ambulance: 999 or 112."


def test_a_list_keeps_its_lines_when_an_item_is_dropped() -> None:
    answer = "1. Boil the water.\n2. Call 1-800-555-0199 for help\n3. Keep it covered."
    checked = drop_unsupported_numbers(answer, STARTER)
    assert checked.text == "1. Boil the water.\n3. Keep it covered."
    assert checked.dropped == ["2. Call 1-800-555-0199 for help"]


def test_a_number_is_one_to_call_by_the_words_after_it_or_by_the_question() -> None:
    """Seen: "1. 102-783 is the emergency number ..."; "193" for the ambulance in Kampala."""
    checked = drop_unsupported_numbers("1. 102-783 is the emergency number here.", STARTER)
    assert checked.text == ""  # the list's "1." alone is no answer
    asked = "whats the number for ambulance service in kampala"
    assert drop_unsupported_numbers("193", STARTER, asked=asked).text == ""
    assert drop_unsupported_numbers("Dial 112.", STARTER, asked=asked).text == "Dial 112."
    assert phone_numbers("Boil it for 10 minutes.", asked="how do I boil water") == []


def test_quantities_are_not_phone_numbers() -> None:
    answer = "Give up to 5 back blows. Boil water for 1 minute, 3 at altitude. Since 2020, 10-15."
    assert phone_numbers(answer) == []
    assert drop_unsupported_numbers(answer, []).text == answer


def test_an_answer_that_is_only_an_invented_number_becomes_empty() -> None:
    """The service then answers from its sources' own sentences instead (extractive)."""
    assert drop_unsupported_numbers("Dial 0800 555 0199.", STARTER).text == ""


UGANDA = "Emergency numbers in Uganda\n- Police: 999 or 112\n- Ambulance: 999 or 112"


def test_a_sentence_putting_the_answer_in_a_country_nobody_named_is_dropped() -> None:
    answer = "Ambulance: 999 or 112. Kampala, India has an ambulance service on 999."
    checked = drop_unsupported_countries(
        answer, [UGANDA], "whats the number for ambulance service in kampala", ["global"]
    )
    assert checked.text == "Ambulance: 999 or 112."
    assert checked.dropped == ["Kampala, India has an ambulance service on 999."]


def test_countries_the_question_the_sources_or_the_asker_name_stay() -> None:
    answer = "In Uganda, call 999. Kenya uses 999 too. In the United States, dial 911."
    sources = [UGANDA, "In the USA dial 911."]
    checked = drop_unsupported_countries(answer, sources, "is 999 used in kenya?")
    assert checked.text == answer and checked.dropped == []
    # The node's region stands in for a country the question does not name.
    asked = "what is the police number"
    assert drop_unsupported_countries("Kenya uses 999.", [UGANDA], asked, ["KE"]).dropped == []
    assert drop_unsupported_countries("Kenya uses 999.", [UGANDA], asked, ["UG"]).text == ""


def test_the_prompts_source_marks_are_taken_out() -> None:
    """Seen: "[4] Fire in the home ..." as an SMS; the user never saw what [4] numbers."""
    assert SOURCE_MARK.sub("", "[4] Get everyone out [2][3]. Crawl low [1].").strip() == (
        "Get everyone out. Crawl low."
    )


def test_an_answer_that_only_repeats_the_question_is_an_echo() -> None:
    question = "the clinic is closed, where can I get malaria tablets"
    assert echoes(question, "The clinic is closed, where can I get malaria tablets?")
    assert not echoes(question, "A pharmacy or a community health worker may stock them.")
    assert not echoes("Is it safe?", "Yes.") and not echoes(question, "")
    # A short answer in the question's words that adds the one thing asked is an answer
    assert not echoes("what is the capital of Kenya", "The capital of Kenya is Nairobi.")
    swahili = "Mtoto wangu anaharisha, nifanye nini?"
    assert echoes(swahili, f'The answer to the question is: "{swahili}"')
    assert not echoes(swahili, f'You asked "{swahili}": give ORS after every loose stool.')


def test_a_bare_yes_or_no_is_not_an_answer() -> None:
    """Seen from SmolLM2-135M: "No, you cannot." after a house fire, and "No, the answer is
    no." with sources saying yes. Nothing to act on or check, so the best source (or "no
    verified answer") is sent instead."""
    fire = "our house burned down last year can i get help rebuilding"
    assert verdict_only(fire, "No, you cannot.")
    assert verdict_only("Is obesity linked to diabetes?", "The answer to this question is: No.")
    assert verdict_only("Est-ce que je peux boire l'eau?", "Non.")
    assert verdict_only("Naweza kunywa maji ya mto?", "Hapana.")
    # A verdict with a reason, a number or a fact is an answer.
    assert not verdict_only(fire, "Yes: ask the district office for the rebuilding grant.")
    assert not verdict_only("Is it safe to drink?", "No. Boil it for one minute first.")
    assert not verdict_only("Can I call for help?", "Yes, 112.")
    # No verdict at all is for the other checks.
    assert not verdict_only(fire, "") and not verdict_only(fire, "Call the district office.")


def test_a_bare_yes_or_no_opening_an_answer_is_taken_out() -> None:
    """Seen on the SciFact corpus: the answer opened "No, the answer is no." and its SMS, cut
    at the first sentence, was just that."""
    asked = "Is obesity linked to a higher risk of type 2 diabetes?"
    rest = (
        'The statement "The connection between obesity and type 2 diabetes mellitus (T2D) with '
        'cancer risk appears to be a positive association" does not support the claim.'
    )
    said = f"No, the answer is no. {rest}"
    assert fit_sms(said).text == "No, the answer is no."  # what the phone showed
    assert without_hollow(asked, said) == rest
    assert without_hollow(asked, "No, the answer is no.") == ""  # nothing else: no answer
    # The reason is what an SMS needs; a verdict in the same sentence as its reason stays.
    boil = "Should I boil river water?"
    assert without_hollow(boil, "Yes. Boil it for one minute.") == "Boil it for one minute."
    assert without_hollow(boil, "Yes, for one minute.") == "Yes, for one minute."


def test_the_question_said_back_before_the_answer_is_taken_out() -> None:
    asked = "quanto custa um extintor"
    said = "quanto custa um extintor - 1. O preço varia entre 50 e 100 reais."
    assert without_hollow(asked, said) == "O preço varia entre 50 e 100 reais."
    # In a UCS-2 SMS of 70 characters that echo was all the user got (sent in GSM-7 now).
    assert fit_sms(without_hollow(asked, said)).text == "O preco varia entre 50 e 100 reais."
    assert without_hollow(asked, "Quanto custa um extintor?") == ""  # nothing else: no answer
    # A lead-in in the question's words introduces the answer, and stays with it.
    listed = "The signs of malaria are:\n- Fever\n- Chills and headache"
    assert without_hollow("what are the signs of malaria", listed) == listed


def test_a_quantity_no_source_gives_takes_its_sentence_out() -> None:
    """A model restating "boil for 1 minute" as "10 minutes" changes what a person does."""
    source = ["Boil clear water for 1 minute (3 minutes at high altitude), let it cool covered."]
    answer = "Boil the water for one minute. Boil it for 10 minutes to be safe. Let it cool."
    checked = drop_unsupported_quantities(answer, source)
    assert checked.dropped == ["Boil it for 10 minutes to be safe."]
    assert checked.text == "Boil the water for one minute. Let it cool."
    # Number words count as the digits they say, in the languages nodes ask in.
    assert drop_unsupported_quantities("Hervir tres minutos.", source).dropped == []
    assert drop_unsupported_quantities("Chemsha dakika kumi.", source).dropped == [
        "Chemsha dakika kumi."
    ]
    assert quantities("un enfant de deux ans, 6 cuillères") == {"2", "6"}  # "un" is no amount
