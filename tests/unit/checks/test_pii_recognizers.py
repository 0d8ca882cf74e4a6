"""guard.checks.recognizers on their own (a presidio AnalyzerEngine with the dev spaCy model and these
recognizers) and through PiiCheck. Values are made up; card numbers pass Luhn."""

from __future__ import annotations

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.checks.recognizers import (
    CardNumberRecognizer,
    LenientPhoneRecognizer,
    extra_recognizers,
    find_street_addresses,
)
from guard.policy import PiiConfig

pytestmark = pytest.mark.unit

ENTITIES = ["PERSON", "LOCATION", "PHONE_NUMBER", "CREDIT_CARD"]


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL, alternatives={})


def _found(pii: PiiCheck, text: str, entities: list[str] = ENTITIES) -> list[tuple[str, str]]:
    config = PiiConfig(score_threshold=0.4, entities=dict.fromkeys(entities, "redact"))
    [result] = pii.run([CheckItem(text=text, config=config, stage="input", scope=RequestScope())])
    return [(f.type, text[f.start : f.end]) for f in result.findings]


def _phones(text: str) -> list[str]:
    return [text[r.start : r.end] for r in LenientPhoneRecognizer().analyze(text, ["PHONE_NUMBER"])]


def _cards(text: str) -> list[str]:
    return [text[r.start : r.end] for r in CardNumberRecognizer().analyze(text, ["CREDIT_CARD"])]


def _addresses(text: str) -> list[str]:
    return [text[start:end] for start, end in find_street_addresses(text)]


def test_the_registered_recognizers_replace_presidios_by_name(pii: PiiCheck) -> None:
    names = [r.name for r in extra_recognizers()]
    assert {"SpacyRecognizer", "PhoneRecognizer", "CreditCardRecognizer", "StreetAddressRecognizer"} <= set(names)
    registered = pii._analyzer.registry.recognizers
    for name in names:
        packages = [type(r).__module__.rpartition(".")[0] for r in registered if r.name == name]
        assert packages == ["guard.checks.recognizers"]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Send it to 1147 Roodborstweg 193, Apeldoorn please", "1147 Roodborstweg 193, Apeldoorn"),
        (
            "Jane Roe\n\n12 Akti Kanari Street\n Apt. 638\n Nicosia\n Cyprus 33157\n",
            "12 Akti Kanari Street\n Apt. 638\n Nicosia\n Cyprus 33157",
        ),
        (
            "Change it to 32 P.O. Box 254 Suite 9, LAHTI, Finland 15110 for post mail?",
            "32 P.O. Box 254 Suite 9, LAHTI, Finland 15110",
        ),
        ("The bar is on Vallerstrasse 150.", "Vallerstrasse 150"),
        (
            "Meet at the corner of 50 Point Walter Road and Kishiev Avenue",
            "the corner of 50 Point Walter Road and Kishiev Avenue",
        ),
        ("Unit 1096 Box 7899\nDPO AA 06934", "Unit 1096 Box 7899\nDPO AA 06934"),
        ("I live at 8 rue des Lilas\nLyon, France 69003.", "8 rue des Lilas\nLyon, France 69003"),
        # UK, Irish, Australian and Canadian layouts (issue 17, third round): thoroughfare types that are ordinary
        # nouns too after a house number, flat lines, unit/house numbers, two-part postcodes, Eircodes.
        ("Post it to 27 Hawthorn Rise, Kendal LA9 4QT.", "27 Hawthorn Rise, Kendal LA9 4QT"),
        ("Her flat is Flat 12\nOsborne Mansions, near the park.", "Flat 12\nOsborne Mansions"),
        ("Send it to 4/27 Wattle Parade, Cronulla NSW 2230 please", "4/27 Wattle Parade, Cronulla NSW 2230"),
        ("Office: 18 Main Street, Ennis, Co. Clare, V95 X2H4", "18 Main Street, Ennis, Co. Clare, V95 X2H4"),
        ("We stayed at 9 Birch Crescent, Halifax NS B3H 1T5", "9 Birch Crescent, Halifax NS B3H 1T5"),
        ("My parents still live at 35 Quarry Meadows.", "35 Quarry Meadows"),
        ("Unit 4\n12 Harbour View\nFremantle WA 6160\nThanks!", "Unit 4\n12 Harbour View\nFremantle WA 6160"),
        ("We met at 11 Elm Lane and then drove to St Ives.", "11 Elm Lane"),
        ("I moved to 12 Oak Rise last spring, so update it.", "12 Oak Rise"),
    ],
)
def test_street_addresses_are_one_span(text: str, address: str) -> None:
    assert _addresses(text) == [address]


@pytest.mark.parametrize(
    "text",
    [
        "I bought 3 apples and 2 pears.",
        "For my take on Dr. Palerma, see Guilty Pleasures",
        "We need 2 Developers by Friday",
        "Call me at 555 123 4567",
        "Room 12 is on the 3rd floor.",
        "Chapter 3 Key Points",  # a counted number, a street type that is an ordinary noun
        "The deck uses Windows 11 Power Point slides.",  # a number after a capitalised word names a version
        "Step 3\nOpen Settings\nThen restart.",  # a number on a line of its own
        "1. Creative\n2. Analytical\n3. Organized",  # list markers
        "We shipped 12 Park benches and 4 Garden chairs.",
        "See 9/11 Truth Movement",  # a slash number needs a street type
    ],
)
def test_street_addresses_do_not_fire_on_ordinary_numbers_and_titles(text: str) -> None:
    assert _addresses(text) == []


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("I would like to stop receiving messages to 72 805 20 53", "72 805 20 53"),
        ("Can someone call me on 617 4281? I have questions.", "617 4281"),
        ("Mobile: 96 277723", "96 277723"),
        ("40-95-78-17 office", "40-95-78-17"),
        ("reach us at +41 36 659 05 15", "+41 36 659 05 15"),
        ("it is (212) 555-0199", "(212) 555-0199"),
    ],
)
def test_phone_numbers_in_any_format_with_a_phone_word_or_valid(text: str, phone: str) -> None:
    assert _phones(text) == [phone]


@pytest.mark.parametrize(
    "text",
    [
        "Date: 2006-06-10 15:01:05.029837",
        "keep getting address 179.180.139.192 blocked",
        "Here's my SSN: 092-15-9407",
        "Order no. 11 22 33 shipped",  # a digit group with no phone word and no valid number
        "She was born on 7/21/1986.",
    ],
)
def test_phone_numbers_do_not_fire_on_dates_ips_ssns_or_bare_digit_groups(text: str) -> None:
    assert _phones(text) == []


@pytest.mark.parametrize(
    "number",
    ["2282064361103717", "4086211823398454616", "502006181759", "213130768104091", "4111 1111 1111 1111"],
)
def test_card_numbers_of_every_issuer_range_and_length(number: str) -> None:
    text = f"My card {number} was lost"
    assert _cards(text) == [number]


@pytest.mark.parametrize(
    "text",
    [
        "My card 2282064361103718 was lost",  # fails Luhn
        "Order 9876543210987 shipped",  # no issuer range, no card word
        "call +915857306524 now",  # a phone number
    ],
)
def test_card_numbers_need_luhn_and_an_issuer_range(text: str) -> None:
    assert _cards(text) == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hello, this is Mr. Rory McKeon. Who are you?", "Mr. Rory McKeon"),
        ("My great grandmother was called Amy Paterson", "Amy Paterson"),
        ("Sue, can I please speak to your boss?", "Sue"),
        ("I would like to remove my kid Fern from the will.", "Fern"),
        ("As promised, here's Esko's address: somewhere", "Esko"),
        ("Garrett: Remember me, Kevin?", "Garrett"),
    ],
)
def test_people_announced_by_cue_phrases(pii: PiiCheck, text: str, name: str) -> None:
    assert ("PERSON", name) in _found(pii, text)


def test_a_name_found_once_is_found_again(pii: PiiCheck) -> None:
    found = _found(pii, "Hi Isolda Marrero, thanks. Is there anyone better than early Marrero?")
    assert ("PERSON", "Isolda Marrero") in found
    assert ("PERSON", "Marrero") in found


def test_people_spacy_runs_across_lines_are_cut_to_the_name(pii: PiiCheck) -> None:
    found = _found(pii, "Date: 2005-03-24\nName: Felix Biermann\nPhone: 06-79062134")
    assert ("PERSON", "Felix Biermann") in found
    assert all("\n" not in value for kind, value in found if kind == "PERSON")


@pytest.mark.parametrize(
    "text",
    [
        "Capitalized words like wisdom are often mistaken with names.",
        "CAN I SPEAK TO A REAL PERSON?",
        "Kayne Anderson Energy Total Return Fund Inc. reported earnings.",
        "Phone: 555 0100",
    ],
)
def test_no_person_in_ordinary_words_labels_or_company_names(pii: PiiCheck, text: str) -> None:
    assert [value for kind, value in _found(pii, text) if kind == "PERSON"] == []


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("I will be travelling to Switzerland next week", "Switzerland"),
        ("Ms. Posavec flew to Raikkula on Monday morning.", "Raikkula"),
        ("Krzys Zielinski\n\nGudhjem\nDenmark", "Gudhjem"),  # a town line above a country line
    ],
)
def test_places_from_the_gazetteer_and_cues(pii: PiiCheck, text: str, place: str) -> None:
    assert any(kind == "LOCATION" and place in value for kind, value in _found(pii, text))


def test_an_address_wins_over_a_person_inside_it(pii: PiiCheck) -> None:
    text = "The restaurant is at 12045 Via Carlo Cattaneo 88"
    assert _found(pii, text) == [("LOCATION", "12045 Via Carlo Cattaneo 88")]
