"""How answers divide into sentences: lines, list items and sentence ends, as models write them."""

from __future__ import annotations

from bigevy.answers.sentences import Sentence, join, prose, sentences


def texts(text: str) -> list[str]:
    return [s.text for s in sentences(text)]


def test_lines_and_sentence_ends_divide_a_text() -> None:
    text = "Boil water to kill germs\n2. Use a clean cloth.  Then cover it!\n\nDone?"
    assert sentences(text) == [
        Sentence("Boil water to kill germs", opens_line=True),
        Sentence("2. Use a clean cloth.", opens_line=True),
        Sentence("Then cover it!", opens_line=False),
        Sentence("Done?", opens_line=True),
    ]
    assert join(sentences(text)) == (
        "Boil water to kill germs\n2. Use a clean cloth. Then cover it!\nDone?"
    )


def test_a_piece_without_letters_is_no_sentence_of_its_own() -> None:
    """A list's "1." on its own line, or "2." left at the end of one, goes with the next
    sentence; at the very end, with the last ("Call:" then "112")."""
    assert texts("1.\nBoil it.") == ["1. Boil it."]
    assert texts("Boil it. 2.\nCover it.") == ["Boil it.", "2. Cover it."]
    assert texts("Call:\n112") == ["Call: 112"]
    assert texts("1. Boil it. 2. Cover it.") == ["1. Boil it.", "2. Cover it."]
    assert texts("112.") == ["112."]
    assert texts(" \n ") == []


def test_a_list_marker_with_no_item_after_it_is_dropped_at_the_end() -> None:
    """An answer cut short after "2." (or after "... do this: 1.") never ends an SMS with it."""
    assert texts("Steps: 1. Boil water. 2.") == ["Steps:", "1. Boil water."]
    assert prose("Here is what to do:\n1.") == "Here is what to do:"
    assert prose("Boil it.\n-\n3.") == "Boil it."
    assert texts("1.") == []
    assert texts("Numbers:\n112\n999") == ["Numbers: 112 999"]  # numbers are no markers


def test_a_line_opening_with_a_bullet_lists_an_item_after_each_bullet() -> None:
    """Chunks keep a Markdown list's items on one line."""
    assert texts("- Police: 999 or 112 - Fire: 998") == ["- Police: 999 or 112", "- Fire: 998"]
    assert texts("Boil it - for one minute") == ["Boil it - for one minute"]


def test_numbers_in_a_row_on_one_line_are_a_list() -> None:
    """Seen: an SMS ending "... taken to the hospital immediately; 2."."""
    assert texts("Call for help; 2. Keep them still. 3. Note the time.") == [
        "Call for help;",
        "2. Keep them still.",
        "3. Note the time.",
    ]
    assert texts("The answer is: 1. Boil it 2. Cover it") == [
        "The answer is:",
        "1. Boil it",
        "2. Cover it",
    ]
    # One after a colon opens a list, even where the line ends.
    assert texts("The steps are: 1.\nBoil it.") == ["The steps are:", "1. Boil it."]
    assert prose("The answer to this question is: 1. It costs money.") == (
        "The answer to this question is: It costs money."
    )
    # A number alone is no list, whatever its full stop.
    assert texts("Only after the age of 10. Then go.") == ["Only after the age of 10.", "Then go."]


def test_values_after_labels_are_no_list() -> None:
    """Any number after a colon once opened an item: "Police: 17. Fire: 18." lost both
    numbers, and a second pass over prose (an SMS fitted from a knowledge-base answer) erased
    two-digit emergency numbers that the first pass had kept."""
    numbers = "# Emergency numbers in Senegal\n\n- Police: 17\n- Fire: 18\n- Ambulance: 15"
    once = prose(numbers)
    assert once == "Emergency numbers in Senegal. Police: 17. Fire: 18. Ambulance: 15"
    assert prose(once) == once
    assert prose("Police: 10. Ambulance: 11.") == "Police: 10. Ambulance: 11."
    assert prose("If the fever is above: 39. Go to the clinic.") == (
        "If the fever is above: 39. Go to the clinic."
    )
    # A numbered item inside a bullet loses both markers, not only the bullet.
    assert prose("Prices:\n- 1. Small: 20\n- 2. Large: 50") == "Prices: Small: 20. Large: 50"


def test_prose_drops_markers_and_ends_each_line_before_the_next() -> None:
    assert prose("# Water\n1. **Boil** it\n2) Cover it\n* Drink") == (
        "Water. Boil it. Cover it. Drink"
    )
    assert prose("Do this:\n- boil it") == "Do this: boil it"
