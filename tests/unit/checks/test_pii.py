from __future__ import annotations

import asyncio
from typing import Any

import pytest

from guard.checks import CheckItem, CheckResult, RequestScope
from guard.checks import pii as pii_module
from guard.checks.batcher import CheckBatcher
from guard.checks.pii import DEV_SPACY_MODEL, HASH_TOKEN, PiiCheck
from guard.policy import PiiConfig
from guard.policy.schema import PiiEntityRule

pytestmark = pytest.mark.unit

CONFIG = PiiConfig(
    score_threshold=0.4,
    entities={"PERSON": "redact", "EMAIL_ADDRESS": "redact", "PHONE_NUMBER": "flag", "US_SSN": "allow"},
)


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    # alternatives={}: these tests were written for Japanese read by patterns only, GiNZA installed or not.
    return PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"unit-test-hash-key-32-bytes-long", alternatives={})


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


# -- actions, thresholds and allow-lists ------------------------------------------------------------------------

CARD = "4416721106840383"  # Faker-made (Luhn-valid)
SSN = "550-47-4534"  # Faker-made


def _run_one(pii: PiiCheck, text: str, config: PiiConfig, scope: RequestScope | None = None) -> CheckResult:
    (result,) = pii.run([CheckItem(text=text, config=config, stage="input", scope=scope or RequestScope())])
    return result


def test_mask_keeps_the_last_characters_of_the_normalised_value(pii: PiiCheck) -> None:
    config = PiiConfig(entities={"CREDIT_CARD": PiiEntityRule(action="mask", keep_last=4)})
    result = _run_one(pii, f"Card {CARD} or 4416.7211.0684.0383.", config)
    assert result.text == "Card ************0383 or ***************0383."
    assert [f.action for f in result.findings] == ["mask", "mask"]


def test_mask_never_leaves_most_of_a_short_value_readable(pii: PiiCheck) -> None:
    config = PiiConfig(entities={"US_SSN": PiiEntityRule(action="mask", keep_last=10, mask_char="#")})
    assert _run_one(pii, f"SSN {SSN}.", config).text == "SSN ######-4534."


def test_hash_is_keyed_stable_and_the_same_for_every_spelling_of_a_value(pii: PiiCheck) -> None:
    config = PiiConfig(entities={"EMAIL_ADDRESS": "hash", "CREDIT_CARD": "hash"})
    first = _run_one(pii, "Mail maria@example.com, card 4416 7211 0684 0383.", config)
    second = _run_one(pii, "Mail MARIA\u200b@example.com, card 4416.7211.0684.0383, bob@example.com.", config)
    assert first.text is not None
    assert second.text is not None
    tokens, other_tokens = HASH_TOKEN.findall(first.text), HASH_TOKEN.findall(second.text)
    assert len(tokens) == 2
    assert tokens[0].startswith("<EMAIL_ADDRESS:")
    assert tokens[1].startswith("<CREDIT_CARD:")
    assert other_tokens[:2] == tokens  # another request, another spelling: the same pseudonyms
    assert other_tokens[2] not in tokens
    rekeyed = PiiCheck(pii._analyzer, pii.pipelines, hash_key=b"another-key-of-at-least-16-bytes")
    assert HASH_TOKEN.findall(_run_one(rekeyed, "Mail maria@example.com.", config).text or "") != tokens[:1]
    # A hash token is not a placeholder: it is never restored and never detected again.
    assert RequestScope().restore(first.text) == first.text
    assert _run_one(pii, first.text, config).findings == ()


def test_block_is_a_finding_and_other_entities_are_still_rewritten(pii: PiiCheck) -> None:
    config = PiiConfig(entities={"US_SSN": "block", "EMAIL_ADDRESS": "redact"})
    text = f"SSN {SSN}, mail maria@example.com."
    result = _run_one(pii, text, config)
    assert [(f.type, f.action) for f in result.findings] == [("US_SSN", "block"), ("EMAIL_ADDRESS", "redact")]
    assert result.text == f"SSN {SSN}, mail <EMAIL_ADDRESS_1>."


def test_allow_lists_are_compared_after_normalisation(pii: PiiCheck) -> None:
    config = PiiConfig(
        allow_list=["Support@Example.com"],
        entities={"EMAIL_ADDRESS": "redact", "CREDIT_CARD": PiiEntityRule(action="redact", allow=[CARD])},
    )
    text = f"Mail support\u200b@example.com or maria@example.com; test card {CARD}."
    result = _run_one(pii, text, config)
    assert result.text == f"Mail support\u200b@example.com or <EMAIL_ADDRESS_1>; test card {CARD}."


def test_an_entity_threshold_overrides_the_section_threshold(pii: PiiCheck) -> None:
    text = f"Call 212-555-0142 about SSN {SSN}."  # the phone scores 0.4 without context, the SSN 0.85
    lenient = PiiConfig(score_threshold=0.3, entities={"PHONE_NUMBER": "flag", "US_SSN": "flag"})
    strict_phone = PiiConfig(
        score_threshold=0.3,
        entities={"PHONE_NUMBER": PiiEntityRule(action="flag", threshold=0.9), "US_SSN": "flag"},
    )
    assert [f.type for f in _run_one(pii, text, lenient).findings] == ["PHONE_NUMBER", "US_SSN"]
    findings = _run_one(pii, text, strict_phone).findings
    assert [(f.type, f.threshold) for f in findings] == [("US_SSN", 0.3)]


# -- the per-request vault --------------------------------------------------------------------------------------


async def test_concurrent_requests_each_get_only_their_own_names_restored(pii: PiiCheck) -> None:
    batcher = CheckBatcher(pii)
    try:
        first, second = RequestScope(), RequestScope()
        config = PiiConfig(entities={"PERSON": "redact"}, restore=True)
        redacted = await asyncio.gather(
            batcher.run(
                [CheckItem(text="Please write to Maria Garcia today.", config=config, stage="input", scope=first)]
            ),
            batcher.run(
                [CheckItem(text="Please write to John Smith today.", config=config, stage="input", scope=second)]
            ),
        )
    finally:
        batcher.close()
    assert [r.text for (r,) in redacted] == ["Please write to <PERSON_1> today."] * 2
    first.seal_input()
    second.seal_input()
    # A name first seen in the output gets a placeholder too, but it is not the caller's to get back.
    assert first.placeholder("PERSON", "Ann Lee") == "<PERSON_2>"
    answer = "Dear <PERSON_1>, <PERSON_2> will reply."
    assert first.restore(answer) == "Dear Maria Garcia, <PERSON_2> will reply."
    assert second.restore(answer) == "Dear John Smith, <PERSON_2> will reply."


# -- batching and routing ---------------------------------------------------------------------------------------


def test_one_batch_mixes_configs_languages_and_requests(pii: PiiCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = pii._analyzer.nlp_engine
    calls: list[tuple[str, int]] = []
    original = engine.process_batch

    def counting(texts: list[str], language: str, **kwargs: Any) -> Any:
        calls.append((language, len(texts)))
        return original(texts, language, **kwargs)

    monkeypatch.setattr(engine, "process_batch", counting)
    patterns_only = PiiConfig(entities={"EMAIL_ADDRESS": "flag", "CREDIT_CARD": "redact"})
    request, other = RequestScope(), RequestScope()
    items = [
        CheckItem(text="Ask Maria Garcia.", config=CONFIG, stage="input", scope=request),
        CheckItem(text=f"Card {CARD}, mail maria@example.com.", config=patterns_only, stage="input", scope=other),
        CheckItem(text="田中さんのメールはtaro@example.comです。", config=CONFIG, stage="input", scope=request),
        CheckItem(text="", config=CONFIG, stage="input", scope=request),
        CheckItem(text="Dear John Smith, Maria Garcia wrote.", config=CONFIG, stage="output", scope=request),
    ]
    results = pii.run(items)
    assert [r.text for r in results] == [
        "Ask <PERSON_1>.",
        "Card <CREDIT_CARD_1>, mail maria@example.com.",  # its own config: e-mail addresses are only flagged
        "田中さんのメールは<EMAIL_ADDRESS_1>です。",
        "",
        "Dear <PERSON_2>, <PERSON_1> wrote.",  # the request's numbering carries over to its output
    ]
    assert [f.action for f in results[1].findings] == ["redact", "flag"]
    # spaCy ran once for the English texts that need names and once (blank tokenizer) for the rest.
    assert sorted(calls) == [("en", 2), ("xx", 2)]


def test_extra_recognizers_replace_defaults_of_the_same_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from presidio_analyzer import Pattern, PatternRecognizer

    extension = PatternRecognizer(
        supported_entity="PHONE_NUMBER",
        name="PhoneRecognizer",
        patterns=[Pattern(name="extension", regex=r"\bext\.? ?\d{4}\b", score=0.9)],
    )
    monkeypatch.setattr(pii_module, "extra_recognizers", lambda: [extension])
    pii = PiiCheck.load(DEV_SPACY_MODEL, alternatives={})
    phones = [r for r in pii._analyzer.registry.recognizers if r.name == "PhoneRecognizer"]
    assert phones == [extension]
    config = PiiConfig(entities={"PHONE_NUMBER": "redact"})
    assert _run_one(pii, "Reach me on ext 4821.", config).text == "Reach me on <PHONE_NUMBER_1>."
