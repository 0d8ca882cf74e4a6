"""Form-like prose (issue 17): labelled fields, towns named after people, titles, IBANs in groups of four.
Values are made up; IBANs carry valid check digits."""

from __future__ import annotations

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.checks.recognizers import FormFieldRecognizer, GroupedIbanRecognizer, ToponymRecognizer
from guard.policy import PiiConfig

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL, alternatives={})


def _found(pii: PiiCheck, text: str) -> list[tuple[str, str]]:
    entities = ["PERSON", "LOCATION", "IBAN_CODE"]
    config = PiiConfig(score_threshold=0.3, entities=dict.fromkeys(entities, "redact"))
    [result] = pii.run([CheckItem(text=text, config=config, stage="input", scope=RequestScope())])
    return [(f.type, text[f.start : f.end]) for f in result.findings]


def _fields(text: str) -> list[tuple[str, str]]:
    return [(r.entity_type, text[r.start : r.end]) for r in FormFieldRecognizer().analyze(text, ["PERSON", "LOCATION"])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Account holder: Dr Ana Ruiz\nBirthplace: Ulm", [("PERSON", "Dr Ana Ruiz"), ("LOCATION", "Ulm")]),
        ("Payee = Tom Berg | Bank city = Kampen", [("PERSON", "Tom Berg"), ("LOCATION", "Kampen")]),
        ("Next of kin — Ms Ida Holm. Town of birth — Lund.", [("PERSON", "Ms Ida Holm"), ("LOCATION", "Lund")]),
        (
            "Passenger Jo Vidal, origin La Coruña, destination Vigo.",
            [("PERSON", "Jo Vidal"), ("LOCATION", "La Coruña"), ("LOCATION", "Vigo")],
        ),
        ("The guarantor, Eva van Dijk, signed.", [("PERSON", "Eva van Dijk")]),
    ],
)
def test_labelled_fields_are_typed_by_their_label(text: str, expected: list[tuple[str, str]]) -> None:
    assert _fields(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Applicant status: Approved. Place of birth: not stated.",
        "Beneficiary: see attached sheet; Residence: unchanged.",
        "Next of kin: None given. Town of birth: Unknown.",
        "Contact Customer Service for help.",
        "Where: Albany Country Club.",
        "I've shared it at http://www.CityCalculator.com.ee/",
        "Don't go to town, Brett!",
    ],
)
def test_filler_answers_and_names_holding_label_words_are_not_field_values(text: str) -> None:
    assert _fields(text) == []


def test_towns_named_after_people_are_places() -> None:
    text = "From Port Justin via Adamsbury to East Mistyborough; Ray Bradbury stayed. Call Support."
    found = [text[r.start : r.end] for r in ToponymRecognizer().analyze(text, ["LOCATION"])]
    assert sorted(found) == ["Adamsbury", "East Mistyborough", "Port Justin"]


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00 belongs to her.", "DE89 3704 0044 0532 0130 00"),
        ("Pay to GB82 WEST 1234 5698 7654 32, thanks", "GB82 WEST 1234 5698 7654 32"),
        ("iban: de89 3704 0044 0532 0130 00", "de89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432 to other bank", "GB82WEST12345698765432"),
    ],
)
def test_ibans_are_cut_where_the_checksum_ends(text: str, iban: str) -> None:
    found = [text[r.start : r.end] for r in GroupedIbanRecognizer().analyze(text, ["IBAN_CODE"])]
    assert found == [iban]


def test_a_title_belongs_to_the_name_and_a_field_label_is_not_a_person(pii: PiiCheck) -> None:
    found = _found(pii, "Cardholder: Mrs. Julia Morris\nStudent: Hanna Spiker\nIBAN: DE89 3704 0044 0532 0130 00")
    assert found == [
        ("PERSON", "Mrs. Julia Morris"),
        ("PERSON", "Hanna Spiker"),
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ]
