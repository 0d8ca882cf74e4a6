"""The PII scoring rule on hand-made examples whose precision and recall are worked out by hand."""

from __future__ import annotations

import pytest

from guard.checks import CheckItem, CheckResult, Finding
from guard.evaluation.pii import CharCounts, GoldSpan, evaluate, f_beta, score_spans

pytestmark = pytest.mark.unit

TEXT = "Call Ann Lee at 555-0100 now"
#       0123456789012345678901234567
#       "Ann Lee" = 5..12 (6 non-space chars), "555-0100" = 16..24 (8 chars)


def test_exact_match_is_perfect() -> None:
    gold = [GoldSpan("PERSON", 5, 12), GoldSpan("PHONE_NUMBER", 16, 24)]
    counts = score_spans(TEXT, gold, gold)
    assert counts["PERSON"] == CharCounts(tp=6, fp=0, fn=0)
    assert counts["PHONE_NUMBER"] == CharCounts(tp=8, fp=0, fn=0)
    assert counts["EMAIL_ADDRESS"] == CharCounts()


def test_partial_overlap_counts_characters_and_ignores_whitespace() -> None:
    gold = [GoldSpan("PERSON", 5, 12)]
    predicted = [GoldSpan("PERSON", 9, 15)]  # "Lee at": 3 right, "at" 2 wrong, the spaces are not counted
    counts = score_spans(TEXT, gold, predicted)["PERSON"]
    assert counts == CharCounts(tp=3, fp=2, fn=3)
    assert counts.precision == pytest.approx(3 / 5)
    assert counts.recall == pytest.approx(3 / 6)
    assert counts.f2 == pytest.approx(5 * 0.6 * 0.5 / (4 * 0.6 + 0.5))


def test_a_span_of_the_wrong_type_is_a_miss_and_a_false_positive() -> None:
    counts = score_spans(TEXT, [GoldSpan("PERSON", 5, 12)], [GoldSpan("LOCATION", 5, 12)])
    assert counts["PERSON"] == CharCounts(tp=0, fp=0, fn=6)
    assert counts["LOCATION"] == CharCounts(tp=0, fp=6, fn=0)


def test_f_beta() -> None:
    assert f_beta(1.0, 1.0, 2.0) == 1.0
    assert f_beta(0.0, 0.0, 2.0) == 0.0
    assert f_beta(0.5, 1.0, 2.0) == pytest.approx(5 * 0.5 / (4 * 0.5 + 1.0))  # recall weighs more than precision
    assert f_beta(1.0, 0.5, 2.0) < f_beta(0.5, 1.0, 2.0)


class _FixedCheck:
    """Stands in for the PII check: returns the findings given per text (orchestration test only)."""

    name = "pii"
    spacy_model = "unused"

    def __init__(self, findings: dict[str, list[tuple[str, int, int]]]) -> None:
        self._findings = findings
        self.batches: list[int] = []

    def run(self, items: list[CheckItem]) -> list[CheckResult]:
        self.batches.append(len(items))
        assert all(item.config.entities["LOCATION"] == "redact" for item in items)
        return [
            CheckResult(
                findings=tuple(
                    Finding(check="pii", type=t, score=1.0, threshold=0.4, action="redact", start=s, end=e)
                    for t, s, e in self._findings.get(item.text, [])
                )
            )
            for item in items
        ]


def test_evaluate_pools_characters_over_rows_into_one_report() -> None:
    rows = [
        {
            "text": TEXT,
            "spans": [{"type": "PERSON", "start": 5, "end": 12}, {"type": "PHONE_NUMBER", "start": 16, "end": 24}],
        },
        {"text": "no PII here", "spans": []},
    ]
    check = _FixedCheck({TEXT: [("PERSON", 5, 12)], "no PII here": [("LOCATION", 0, 2)]})
    [report] = evaluate(rows, {"pii": check}, None, "input", baseline=False)
    table = {row[0]: row for row in report.rows}
    assert table["PERSON"][1:] == [6, 1.0, 1.0, 1.0]
    assert table["PHONE_NUMBER"][1:] == [8, 0.0, 0.0, 0.0]
    # Pooled over the eight types: 6 true positives, 2 false positives ("no"), 8 missed phone characters.
    assert report.summary["precision"] == pytest.approx(6 / 8, abs=1e-4)
    assert report.summary["recall"] == pytest.approx(6 / 14, abs=1e-4)
    assert report.summary["recall.PHONE_NUMBER"] == 0.0
    assert check.batches == [2]
