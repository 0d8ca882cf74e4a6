# ruff: noqa: RUF001, RUF003  # fullwidth, look-alike and CJK characters are what these tests are about
"""Issue 4, must show 1: PII written to slip past presidio is detected and redacted at its original offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from faker import Faker

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.policy import PiiConfig

pytestmark = pytest.mark.unit

_fake = Faker("en_US")
_fake.seed_instance(20261123)
CARD = _fake.credit_card_number(card_type="visa16")  # Luhn-valid: presidio rejects made-up card numbers
SSN = _fake.ssn()  # a plausible SSN: presidio rejects sample ones such as 123-45-6789
EMAIL = _fake.email()
_german = Faker("de_DE")
_german.seed_instance(20261123)
IBAN = _german.iban()  # DE + check digits + bank code + account, checksum-valid


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _groups(digits: str, separator: str) -> str:
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


LOCAL, DOMAIN = EMAIL.split("@")
CASES = {
    "email with a zero-width space": ("EMAIL_ADDRESS", f"{LOCAL}\u200b@{DOMAIN}", "Write to {} today."),
    "email with a fullwidth at sign": ("EMAIL_ADDRESS", f"{LOCAL}＠{DOMAIN}", "Write to {} today."),
    "card number with dots": ("CREDIT_CARD", _groups(CARD, "."), "My card is {} thanks."),
    "card number with double spaces": (
        "CREDIT_CARD",
        f"{CARD[:4]} {CARD[4:8]}  {CARD[8:12]} {CARD[12:]}",
        "My card is {} thanks.",
    ),
    "card number in spaced digits": ("CREDIT_CARD", " ".join(CARD), "My card is {} thanks."),
    "name with a Cyrillic letter": ("PERSON", "M\u0430ria Garcia", "Please contact {} about the invoice."),
    "IBAN with a Cyrillic letter": ("IBAN_CODE", IBAN.replace("E", "\u0415", 1), "Transfer it to {} please."),
    "SSN in fullwidth digits": ("US_SSN", _fullwidth(SSN), "My SSN is {}."),
    "SSN in spaced digits": ("US_SSN", " ".join(SSN.replace("-", "")), "My SSN is {}."),
}
CONFIG = PiiConfig(
    score_threshold=0.4,
    entities={"PERSON": "redact", "EMAIL_ADDRESS": "redact", "CREDIT_CARD": "redact", "US_SSN": "redact"}
    | {"IBAN_CODE": "redact"},
)


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"evasion-tests-key-32-bytes-long!", alternatives={})


@pytest.fixture(scope="module")
def vanilla() -> Any:
    """Presidio as shipped (its default configuration with the dev model): what these evasions get past."""
    import presidio_analyzer
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    conf = yaml.safe_load((Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml").read_text())
    conf["models"] = [{"lang_code": "en", "model_name": DEV_SPACY_MODEL}]
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine())


@pytest.mark.parametrize("case", list(CASES))
def test_evasive_pii_is_found_and_redacted_at_its_original_span(pii: PiiCheck, case: str) -> None:
    entity, evasive, template = CASES[case]
    text = template.format(evasive)
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input", scope=RequestScope())])
    assert [(f.type, text[f.start : f.end]) for f in result.findings] == [(entity, evasive)]
    (finding,) = result.findings
    assert finding.detail is not None
    assert finding.detail.endswith("normalized")
    assert finding.score >= finding.threshold
    assert result.text == template.format(f"<{entity}_1>")


@pytest.mark.parametrize("case", [case for case in CASES if case != "name with a Cyrillic letter"])
def test_presidio_alone_misses_them(vanilla: Any, case: str) -> None:
    # The NER model reads "Mаria" as a name either way; every pattern-matched evasion gets past vanilla presidio.
    entity, evasive, template = CASES[case]
    text = template.format(evasive)
    start = text.index(evasive)
    found = vanilla.analyze(text=text, language="en", entities=[entity], score_threshold=0.4)
    assert not [r for r in found if r.start < start + len(evasive) and r.end > start]


def test_several_evasions_in_one_message_keep_the_rest_of_the_text(pii: PiiCheck) -> None:
    email = f"{LOCAL}\u200b@{DOMAIN}"
    card = _groups(CARD, ".")
    ssn = _fullwidth(SSN)
    iban = IBAN.replace("E", "\u0415", 1)
    text = f"Mail\u200b: {email}; card {card}, SSN {ssn} (IBAN {iban}). Thanks!"
    config = PiiConfig(
        entities={"EMAIL_ADDRESS": "redact", "CREDIT_CARD": "mask", "US_SSN": "redact"} | {"IBAN_CODE": "redact"}
    )
    (result,) = pii.run([CheckItem(text=text, config=config, stage="input", scope=RequestScope())])
    masked = "*" * 15 + CARD[-4:]  # the normalised value, 4xxx-xxxx-xxxx-xxxx, keeps its last four
    assert result.text == f"Mail\u200b: <EMAIL_ADDRESS_1>; card {masked}, SSN <US_SSN_1> (IBAN <IBAN_CODE_1>). Thanks!"
    assert {text[f.start : f.end] for f in result.findings} == {email, card, ssn, iban}


def test_the_same_value_written_two_ways_is_detected_both_times(pii: PiiCheck) -> None:
    text = f"Old card {CARD}, new spelling {_groups(CARD, '.')}."
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input", scope=RequestScope())])
    assert [f.type for f in result.findings] == ["CREDIT_CARD", "CREDIT_CARD"]
