from __future__ import annotations

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.policy import PiiConfig

pytestmark = pytest.mark.unit

CONFIG = PiiConfig(
    score_threshold=0.4,
    entities={"PERSON": "redact", "EMAIL_ADDRESS": "redact", "PHONE_NUMBER": "flag", "US_SSN": "allow"},
)


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL)


def test_placeholders_are_numbered_consistently_across_texts(pii: PiiCheck) -> None:
    texts = [
        "Ask Maria Garcia or email maria.garcia@example.com.",
        "Also cc bob@example.net and maria.garcia@example.com again.",
    ]
    scope = RequestScope()
    first, second = pii.run([CheckItem(text=t, config=CONFIG, stage="input", scope=scope) for t in texts])
    assert first.text == "Ask <PERSON_1> or email <EMAIL_ADDRESS_1>."
    assert second.text == "Also cc <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1> again."
    for finding in first.findings:
        assert finding.action == "redact"
        assert finding.score >= finding.threshold
    spans = {texts[0][f.start : f.end] for f in first.findings}
    assert spans == {"Maria Garcia", "maria.garcia@example.com"}


def test_flag_keeps_the_text_and_allow_is_ignored(pii: PiiCheck) -> None:
    text = "Call 212-555-0142 about SSN 536-22-1234."
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input")])
    assert result.text == text
    assert [(f.type, f.action) for f in result.findings] == [("PHONE_NUMBER", "flag")]


def test_our_own_placeholders_are_not_pii(pii: PiiCheck) -> None:
    text = "The contract was signed by <PERSON_1> yesterday."
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="output")])
    assert result.findings == ()
    assert result.text == text


def test_missing_spacy_model_fails_with_a_hint() -> None:
    from guard.checks import CheckUnavailable

    with pytest.raises(CheckUnavailable, match="not installed"):
        PiiCheck.load("en_core_web_nonexistent")
