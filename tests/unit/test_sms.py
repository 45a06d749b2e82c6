"""SMS encoding, segment counting and fitting: the edges a phone network really has."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigevy.answers.sentences import prose
from bigevy.answers.sms import ELLIPSIS, encoding_of, fit_sms, fits, segment_count, units

WORDS = [
    "Boil",
    "water",
    "for",
    "one",
    "minute",
    "before",
    "drinking",
    "it",
    "and",
    "keep",
    "it",
    "covered",
    "after",
]


def words(n_chars: int) -> str:
    text = ""
    i = 0
    while len(text) < n_chars:
        text += WORDS[i % len(WORDS)] + " "
        i += 1
    return text[:n_chars]


def test_exactly_160_gsm7_is_one_sms_and_161_is_two() -> None:
    assert segment_count("a" * 160) == 1
    assert segment_count("a" * 161) == 2
    assert fit_sms("a" * 160).truncated is False


def test_concatenated_parts_hold_153_septets() -> None:
    assert segment_count("a" * 306) == 2
    assert segment_count("a" * 307) == 3


def test_extension_characters_take_two_septets_and_never_split() -> None:
    assert units("€[]") == 6 and encoding_of("€[]") == "GSM-7"
    assert segment_count("a" * 159 + "€") == 2  # 161 septets
    assert segment_count("a" * 152 + "€" + "a" * 152) == 3  # the pair moves to part two


def test_accented_letters_in_gsm7_and_out_of_it() -> None:
    assert encoding_of("café, où, Ñandú") == "UCS-2"  # ú is not in GSM-7
    assert encoding_of("café, où, Ñ, ä, ü") == "GSM-7"
    assert segment_count("é" * 160) == 1
    assert segment_count("á" * 70) == 1 and segment_count("á" * 71) == 2


def test_emoji_force_ucs2_and_count_as_two_units() -> None:
    assert encoding_of("Stay safe 🙂") == "UCS-2"
    assert units("🙂") == 2
    assert segment_count("a" * 68 + "🙂") == 1  # 70 units
    assert segment_count("a" * 69 + "🙂") == 2
    assert segment_count("a" * 66 + "🙂" + "a" * 66) == 3  # the pair is not split


def test_cut_at_a_sentence_boundary_when_one_fits() -> None:
    text = "Move to higher ground now. " + words(200)
    fit = fit_sms(text)
    assert fit.text == "Move to higher ground now."
    assert fit.truncated and fit.segments == 1 and fit.encoding == "GSM-7"


def test_a_list_reads_as_prose_without_its_markers() -> None:
    """Seen from SmolLM2-135M: an answer opening "1. Boiling is ..." became the SMS "1.", and
    "1. Boil water to kill germs\\n2. Use ..." the SMS "1. Boil water to kill germs 2."."""
    fit = fit_sms("1. " + words(200) + ". 2. Keep it covered.")
    assert fit.text.startswith("Boil water for one minute")
    assert fit.text.endswith(ELLIPSIS) and len(fit.text) > 140  # a word cut, not "1."
    assert fit_sms("1. Boil it. 2. " + words(200)).text == "Boil it."
    listed = "1. Boil water to kill germs\n2. " + words(200)
    assert fit_sms(listed).text == "Boil water to kill germs."
    assert fit_sms(listed, 2).text.startswith("Boil water to kill germs. Boil water for")
    # How a chunk of a Markdown list reads (its lines joined): one item after each " - ".
    chunk = "- Police: 999 or 112 - Ambulance: 999 or 112 - Red Cross: 1199"
    assert fit_sms(chunk).text == "Police: 999 or 112. Ambulance: 999 or 112. Red Cross: 1199"
    assert fit_sms("**Boil** the water - for one minute.").text == (
        "Boil the water - for one minute."
    )


def test_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    fit = fit_sms(words(400))
    assert fit.text.endswith(ELLIPSIS) and fit.segments == 1
    body = fit.text.removesuffix(ELLIPSIS)
    assert body.split()[-1] in WORDS  # a whole word, not a piece of one
    assert len(fit.text) > 140  # the budget is used, not wasted


def test_encoding_is_detected_on_what_is_sent() -> None:
    text = words(170) + " 🙂"
    assert encoding_of(text) == "UCS-2"
    fit = fit_sms(text)
    assert fit.encoding == "GSM-7" and len(fit.text) > 70  # the emoji was cut, room regained


def test_more_segments_allow_more_text() -> None:
    text = words(1000)
    lengths = [len(fit_sms(text, n).text) for n in (1, 2, 3)]
    assert lengths == sorted(lengths) and fit_sms(text, 3).segments == 3


def test_bad_segment_count_is_refused() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        fit_sms("hi", 0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"abcdefg .,!?€éá🙂\n", "hello ", "water. ", "x" * 40]), max_size=200
    ).map("".join),
    st.integers(min_value=1, max_value=4),
)
def test_any_text_fits_and_is_a_prefix(text: str, max_segments: int) -> None:
    fit = fit_sms(text, max_segments)
    # Compared without accents: the fit drops those GSM-7 lacks where that makes it GSM-7.
    normal, got = _plain(prose(text)), _plain(fit.text)
    assert fit.segments <= max_segments
    assert normal.startswith(got.removesuffix(ELLIPSIS))
    assert fit.truncated == (got != normal)
    # A cut at a sentence end keeps the text as it is (its own "..." included); any other cut
    # adds the ellipsis.
    body = got if normal.startswith(got) else got.removesuffix(ELLIPSIS)
    if fit.truncated and body and " " in body:  # a cut ends a word, unless one word is too long
        # ... at a space, or at punctuation (a word's trailing ",;:-" go before the ellipsis)
        after = normal[len(body) :].lstrip(",;:-")
        assert after[:1] in ("", " ") or body[-1] in ".!?,;:-"


def test_a_sentence_ending_in_dots_is_kept_whole() -> None:
    """Found by the property above: the text's own "..." is not the ellipsis of a cut."""
    text = "ж " + "x" * 40 + "... " + "x" * 40  # UCS-2 for the ж: 70 units fit, 86 are here
    fit = fit_sms(text, 1)
    assert fit.text == "ж " + "x" * 40 + "..."
    assert (fit.encoding, fit.segments, fit.truncated) == ("UCS-2", 1, True)


def test_accents_gsm7_lacks_are_dropped_so_one_sms_holds_the_advice() -> None:
    """One "ú" made a whole Portuguese answer UCS-2 (70 characters): it was cut mid-sentence."""
    advice = (
        "Refresque a queimadura debaixo de água corrente fresca e limpa durante 20 minutos, "
        "o mais cedo possível."
    )
    fit = fit_sms(advice, 1)
    assert fit.encoding == "GSM-7" and not fit.truncated
    assert fit.text == advice.replace("á", "a").replace("í", "i")
    french = fit_sms("Ne déplacez pas le blessé, appelez à l\u2019aide : c\u2019est sûr.", 1)
    assert (
        french.text == "Ne déplacez pas le blessé, appelez à l'aide : c'est sur."
    )  # é, à are GSM-7
    assert fits("ж" * 70, 1) and not fits("ж" * 71, 1)  # another script stays UCS-2


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
