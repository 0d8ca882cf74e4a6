"""PII type disambiguation and false alarms (issue 17): the type-confusion examples the issue quotes, as tests.

Values are Faker-style made-up numbers (SSNs presidio accepts, an ITIN in the IRS group range, an NHS number with
its check digit); the texts are ours.
"""

from __future__ import annotations

import pytest

from guard.checks import CheckItem
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.checks.recognizers.context_id_recognizer import valid_itin, valid_nhs
from guard.policy import PiiConfig

pytestmark = pytest.mark.unit

ENTITIES = [
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "UK_NHS",
]
CONFIG = PiiConfig(score_threshold=0.3, entities=dict.fromkeys(ENTITIES, "redact"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"unit-test-hash-key-32-bytes-long")


def _found(pii: PiiCheck, text: str) -> list[tuple[str, str]]:
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input")])
    return [(f.type, text[f.start : f.end]) for f in result.findings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My SSN is 536 22 1234.", [("US_SSN", "536 22 1234")]),  # spaced: not a phone number
        ("My social security number is 536-22-1234.", [("US_SSN", "536-22-1234")]),
        ("My ITIN is 912-70-1234 for the tax form.", [("US_ITIN", "912-70-1234")]),  # not an SSN
        ("My passport number is 511663613.", [("US_PASSPORT", "511663613")]),
        ("Passport no. J45711924 expires next year.", [("US_PASSPORT", "J45711924")]),
        ("My driver license number is H6763039.", [("US_DRIVER_LICENSE", "H6763039")]),
        ("Bank account 237714795577 was charged twice.", [("US_BANK_NUMBER", "237714795577")]),
        ("My NHS number is 943 476 5919.", [("UK_NHS", "943 476 5919")]),
        ("Reach me at john.doe@protectai[DOT]com today.", [("EMAIL_ADDRESS", "john.doe@protectai[DOT]com")]),
        ("Mail jane [at] example [dot] org please.", [("EMAIL_ADDRESS", "jane [at] example [dot] org")]),
        (
            "Call me on four one five two zero six two three nine six.",
            [("PHONE_NUMBER", "four one five two zero six two three nine six")],
        ),
    ],
)
def test_types_follow_the_label_and_the_format(pii: PiiCheck, text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(pii, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hi, can you help me with my homework?",
        "Sorry, I didn't get that.",
        "Human: what's the weather like? AI: I can't check the weather.",
        "You are an idiot. Idiot!",
        "Explain the ReAct prompting pattern.",
        "Map Port 80:443 on the load balancer.",
    ],
)
def test_greetings_role_words_and_technical_tokens_are_not_people_or_places(pii: PiiCheck, text: str) -> None:
    assert [kind for kind, _ in _found(pii, text) if kind in ("PERSON", "LOCATION")] == []


def test_a_greeting_is_not_part_of_the_name(pii: PiiCheck) -> None:
    assert ("PERSON", "Lisa Walker") in _found(pii, "Hi, I'm Lisa Walker and I can't log in.")


def test_validators() -> None:
    assert valid_nhs("943 476 5919")
    assert not valid_nhs("943 476 5918")
    assert valid_itin("912-70-1234")
    assert not valid_itin("912-45-1234")  # group 45 is outside the ITIN ranges
