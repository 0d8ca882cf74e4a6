# ruff: noqa: RUF001  # fullwidth commas and colons are how Chinese is punctuated
"""Chinese people and places through jieba (issue 17, must-show 3): F2 ≥ 0.80 on the committed Chinese set.

jieba is the optional ``zh`` extra. Without it the test skips on a developer's machine and FAILS under ``CI=true``
(tests/services.py): .ci/run installs the extra. The Chinese rules were tuned on
``benchmarks/data/pii_zh/dev.jsonl`` (``make_dev.py``); ``zh.jsonl`` is the evaluation set, committed before them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.evaluation.pii import CharCounts, GoldSpan, score_spans
from guard.policy import PiiConfig
from tests.services import require_service

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[3] / "benchmarks" / "data" / "pii_zh" / "zh.jsonl"
CONFIG = PiiConfig(score_threshold=0.4, entities={"PERSON": "redact", "LOCATION": "redact"})


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    if importlib.util.find_spec("jieba") is None:
        require_service("jieba", "pip install -c constraints.txt -e '.[zh]' (.ci/run does)")
    check = PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"unit-test-hash-key-32-bytes-long")
    assert check.pipelines["zh"] == "jieba"
    return check


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("王建国先生住在北京市朝阳区建国路88号。", "<PERSON_1>先生住在<LOCATION_1>。"),
        ("收件人：刘芳，地址：广东省深圳市南山区科技园路12号3栋1502室", "收件人：<PERSON_1>，地址：<LOCATION_1>"),
        ("我叫陈静，来自杭州。", "我叫<PERSON_1>，来自<LOCATION_1>。"),
    ],
)
def test_chinese_names_and_addresses_are_redacted(pii: PiiCheck, text: str, redacted: str) -> None:
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input")])
    assert result.text == redacted


@pytest.mark.parametrize(
    "text",
    [
        "谢谢你的帮助，我明天去超市。",  # 谢谢 ("thanks") is tagged a name; 超市 "supermarket" ends in 市
        "这个城市的小区都很大。",  # 城市 "city", 小区 "housing estate": common nouns ending in 市 and 区
    ],
)
def test_chinese_common_words_are_left_alone(pii: PiiCheck, text: str) -> None:
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input")])
    assert result.findings == ()


def test_the_chinese_set_scores_f2_of_at_least_080(pii: PiiCheck) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    results = pii.run([CheckItem(text=r["text"], config=CONFIG, stage="input", scope=RequestScope()) for r in rows])
    pooled = CharCounts()
    for row, result in zip(rows, results, strict=True):
        gold = [GoldSpan(s["type"], s["start"], s["end"]) for s in row["spans"]]
        found = [GoldSpan(f.type, f.start, f.end) for f in result.findings]
        for entity, counts in score_spans(row["text"], gold, found).items():
            if entity in ("PERSON", "LOCATION"):
                pooled.add(counts)
    print(f"Chinese set: P {pooled.precision:.3f} R {pooled.recall:.3f} F2 {pooled.f2:.3f}")
    assert pooled.f2 >= 0.80, (pooled.precision, pooled.recall, pooled.f2)
