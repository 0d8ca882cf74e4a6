# ruff: noqa: RUF001  # fullwidth CJK punctuation is part of these sentences
"""Issue 4, must show 3: Japanese, Korean and Chinese identifiers and phone numbers, in sentences of those languages.

Identifier formats do not depend on the sentence's language, so every identifier is tried in a Japanese, Korean,
Chinese and English sentence. Values are made with Faker digits and python-stdnum's check-digit functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from faker import Faker
from stdnum.cn import ric
from stdnum.jp import in_
from stdnum.kr import rrn

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.checks.pii_patterns import VALIDATORS, default_recognizers_dir, load_recognizers
from guard.policy import PiiConfig, PolicyError
from guard.policy.schema import PiiValidator

pytestmark = pytest.mark.unit

_fake = Faker()
_fake.seed_instance(4)


def _my_number() -> str:
    body = _fake.numerify("1##########")
    return body + in_.calc_check_digit(body)


def _rrn() -> str:
    birth = _fake.date_of_birth(minimum_age=20, maximum_age=80)
    gender = ("1" if birth.year < 2000 else "3") if _fake.boolean() else ("2" if birth.year < 2000 else "4")
    body = f"{birth:%y%m%d}{gender}{_fake.random_int(10, 96)}{_fake.numerify('###')}"
    return f"{body[:6]}-{body[6:]}{rrn.calc_check_digit(body)}"


def _resident_id() -> str:
    birth = _fake.date_of_birth(minimum_age=20, maximum_age=70)
    body = f"110105{birth:%Y%m%d}{_fake.numerify('###')}"  # 110105: Chaoyang District, Beijing
    return body + ric.calc_check_digit(body + "0")  # stdnum's function skips the last character


def _broken(number: str) -> str:
    """The same number with its check character changed."""
    last = number[-1]
    return number[:-1] + ("1" if last in "0X" else str((int(last) + 1) % 10))


MY_NUMBER, RRN, RESIDENT_ID = _my_number(), _rrn(), _resident_id()
IDENTIFIERS = {
    # entity, value, label per sentence language (the word a person would write before the value)
    "My Number": (
        "JP_MY_NUMBER",
        MY_NUMBER,
        {"ja": "マイナンバー", "ko": "마이넘버", "zh": "个人编号", "en": "My Number (マイナンバー)"},
    ),
    "Japanese postal code": (
        "JP_POSTAL_CODE",
        "〒150-0002",
        {"ja": "住所", "ko": "일본 주소", "zh": "日本地址", "en": "Japanese address"},
    ),
    "Japanese mobile": (
        "PHONE_NUMBER",
        _fake.numerify("090-####-####"),
        {"ja": "携帯電話", "ko": "일본 휴대폰", "zh": "日本手机", "en": "Japanese mobile"},
    ),
    "Japanese landline": (
        "PHONE_NUMBER",
        _fake.numerify("03-5###-####"),
        {"ja": "電話番号", "ko": "일본 전화번호", "zh": "日本电话", "en": "Tokyo phone"},
    ),
    "Korean RRN": ("KR_RRN", RRN, {"ja": "住民登録番号", "ko": "주민등록번호", "zh": "韩国居民登录号", "en": "RRN"}),
    "Korean mobile": (
        "PHONE_NUMBER",
        _fake.numerify("010-####-####"),
        {"ja": "韓国の携帯", "ko": "휴대폰 번호", "zh": "韩国手机", "en": "Korean phone"},
    ),
    "Chinese resident ID": (
        "CN_RESIDENT_ID",
        RESIDENT_ID,
        {"ja": "中国の身分証", "ko": "중국 신분증", "zh": "身份证号码", "en": "Chinese resident ID"},
    ),
    "Chinese mobile": (
        "PHONE_NUMBER",
        _fake.numerify("138########"),
        {"ja": "中国の携帯電話", "ko": "중국 전화", "zh": "手机号", "en": "Chinese mobile phone"},
    ),
}
SENTENCES = {
    "ja": "お問い合わせの件ですが、{label}は{value}です。よろしくお願いします。",
    "ko": "문의드립니다. 제 {label}는 {value}입니다. 감사합니다.",
    "zh": "您好，我的{label}是{value}，谢谢。",
    "en": "Hello, my {label} is {value}, thanks.",
}
CONFIG = PiiConfig(
    score_threshold=0.4,
    entities={"JP_MY_NUMBER": "redact", "JP_POSTAL_CODE": "redact", "KR_RRN": "redact", "CN_RESIDENT_ID": "redact"}
    | {"PHONE_NUMBER": "redact", "PERSON": "redact", "LOCATION": "flag"},
)


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    return PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"seed-language-tests-key-32-bytes", alternatives={})


@pytest.mark.parametrize("language", list(SENTENCES))
@pytest.mark.parametrize("name", list(IDENTIFIERS))
def test_identifier_is_found_in_a_sentence_of_each_language(pii: PiiCheck, name: str, language: str) -> None:
    entity, value, labels = IDENTIFIERS[name]
    text = SENTENCES[language].format(label=labels[language], value=value)
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input", scope=RequestScope())])
    assert (entity, value) in [(f.type, text[f.start : f.end]) for f in result.findings]
    assert result.text is not None
    assert value not in result.text
    assert f"<{entity}_1>" in result.text


@pytest.mark.parametrize(
    ("entity", "broken", "language"),
    [
        ("JP_MY_NUMBER", _broken(MY_NUMBER), "ja"),
        ("KR_RRN", _broken(RRN), "ko"),
        ("CN_RESIDENT_ID", _broken(RESIDENT_ID), "zh"),
        ("KR_RRN", RRN[:2] + "13" + RRN[4:], "ko"),  # month 13: no such birth date
    ],
)
def test_an_invalid_check_digit_is_not_an_identifier(pii: PiiCheck, entity: str, broken: str, language: str) -> None:
    label = {"JP_MY_NUMBER": "マイナンバー", "KR_RRN": "주민등록번호", "CN_RESIDENT_ID": "身份证号码"}[entity]
    text = SENTENCES[language].format(label=label, value=broken)
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input", scope=RequestScope())])
    assert entity not in [f.type for f in result.findings]


def test_identifiers_inside_longer_digit_runs_are_not_matched(pii: PiiCheck) -> None:
    # A 12-digit My Number inside a longer number (an order or card number) is not one.
    text = f"注文番号は9{MY_NUMBER}1です。"
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input", scope=RequestScope())])
    assert "JP_MY_NUMBER" not in [f.type for f in result.findings]


def test_seed_language_texts_use_the_configured_pipeline(pii: PiiCheck) -> None:
    # ja/ko/zh spaCy models are not installable offline: their texts fall back to the blank tokenizer.
    for language, model in {"ja": "ja_core_news_sm", "ko": "ko_core_news_sm", "zh": "zh_core_web_sm"}.items():
        assert pii.pipelines[language] in (model, "patterns only")
    assert pii.pipelines["en"] == DEV_SPACY_MODEL


def test_validators_are_exactly_the_names_the_schema_allows() -> None:
    assert set(VALIDATORS) == set(get_args(PiiValidator))
    assert VALIDATORS["jp_phone"]("090-1234-5678")
    assert not VALIDATORS["jp_phone"]("010-1234-5678")  # a Korean mobile is not a Japanese number
    assert VALIDATORS["kr_phone"]("010-1234-5678")
    assert VALIDATORS["cn_phone"]("13812345678")
    assert not VALIDATORS["cn_phone"]("12812345678")


def test_the_shipped_recognizer_files_load() -> None:
    names = {recognizer.name for recognizer in load_recognizers(default_recognizers_dir())}
    assert {"JpMyNumberRecognizer", "KrRrnRecognizer", "CnResidentIdRecognizer", "JpPhoneRecognizer"} <= names


@pytest.mark.parametrize(
    ("snippet", "reason"),
    [
        ("validator: luhn", "Invalid enum value 'luhn'"),
        ("colour: red", "unknown field `colour`"),
        ("context: [two words]", "matching regex"),
    ],
)
def test_an_invalid_recognizer_file_is_refused(tmp_path: Path, snippet: str, reason: str) -> None:
    (tmp_path / "bad.yaml").write_text(
        "recognizers:\n"
        "  - name: BadRecognizer\n"
        "    entity: JP_MY_NUMBER\n"
        "    patterns: [{name: digits, regex: '\\d{12}', score: 0.5}]\n"
        f"    {snippet}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=reason):
        load_recognizers(tmp_path)


def test_a_recognizer_file_with_a_bad_regular_expression_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "recognizers:\n  - {name: BadRecognizer, entity: KR_RRN, patterns: [{name: x, regex: '(\\d', score: 0.5}]}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="invalid regular expression"):
        load_recognizers(tmp_path)
