"""Japanese people and places through GiNZA (issue 17, must-show 3): F2 ≥ 0.80 on the committed Japanese set.

GiNZA (``ja-ginza``) is the optional ``ja`` extra (its model's training data carry a non-commercial licence). Without
it the test skips on a developer's machine and FAILS under ``CI=true`` (tests/services.py), so CI cannot silently lose
it: .ci/run installs the extra through ``make test``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.checks import CheckItem, RequestScope
from guard.checks.pii import DEV_SPACY_MODEL, PiiCheck
from guard.evaluation.pii import CharCounts, GoldSpan, score_spans
from guard.policy import PiiConfig
from tests.services import require_service

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[3] / "benchmarks" / "data" / "pii_ja" / "ja.jsonl"
CONFIG = PiiConfig(score_threshold=0.4, entities={"PERSON": "redact", "LOCATION": "redact"})


@pytest.fixture(scope="module")
def pii() -> PiiCheck:
    import spacy

    if not spacy.util.is_package("ja_ginza"):
        require_service("GiNZA (ja-ginza)", "pip install -c constraints.txt -e '.[ja]' (make test does)")
    check = PiiCheck.load(DEV_SPACY_MODEL, hash_key=b"unit-test-hash-key-32-bytes-long")
    assert check.pipelines["ja"] == "ja_ginza"
    return check


def test_a_japanese_name_and_address_are_redacted(pii: PiiCheck) -> None:
    text = "山田太郎さんの自宅は東京都新宿区西新宿2丁目8番1号にあります。"
    (result,) = pii.run([CheckItem(text=text, config=CONFIG, stage="input")])
    assert result.text == "<PERSON_1>さんの自宅は<LOCATION_1>にあります。"


def test_the_japanese_set_scores_f2_of_at_least_080(pii: PiiCheck) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    results = pii.run([CheckItem(text=r["text"], config=CONFIG, stage="input", scope=RequestScope()) for r in rows])
    pooled = CharCounts()
    for row, result in zip(rows, results, strict=True):
        gold = [GoldSpan(s["type"], s["start"], s["end"]) for s in row["spans"]]
        found = [GoldSpan(f.type, f.start, f.end) for f in result.findings]
        for entity, counts in score_spans(row["text"], gold, found).items():
            if entity in ("PERSON", "LOCATION"):
                pooled.add(counts)
    assert pooled.f2 >= 0.80, (pooled.precision, pooled.recall, pooled.f2)
