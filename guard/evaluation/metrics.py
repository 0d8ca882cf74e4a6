"""Threshold-free figures of a scored, labelled set: ROC-AUC and calibration (expected calibration error)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["calibration_bins", "expected_calibration_error", "rate", "roc_auc"]


def rate(part: int, whole: int) -> float:
    """``part / whole`` rounded to 4 places (0 for an empty whole)."""
    return round(part / whole, 4) if whole else 0.0


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The probability that a random positive outscores a random negative (ties count half); 0 without both."""
    pairs = sorted(zip(scores, positive, strict=True))
    positives = sum(positive)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return 0.0
    rank_sum = 0.0
    index = 0
    while index < len(pairs):
        end = index
        while end < len(pairs) and pairs[end][0] == pairs[index][0]:
            end += 1
        average_rank = (index + 1 + end) / 2
        rank_sum += average_rank * sum(1 for _, label in pairs[index:end] if label)
        index = end
    return round((rank_sum - positives * (positives + 1) / 2) / (positives * negatives), 4)


def calibration_bins(
    scores: Sequence[float], positive: Sequence[bool], bins: int = 10
) -> list[tuple[str, int, float, float]]:
    """Per equal-width score bin: its range, rows, mean score and observed positive rate (empty bins left out)."""
    table = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            (s, y) for s, y in zip(scores, positive, strict=True) if low <= s < high or (b == bins - 1 and s == 1)
        ]
        if members:
            mean = sum(s for s, _ in members) / len(members)
            observed = sum(y for _, y in members) / len(members)
            table.append((f"{low:.1f}-{high:.1f}", len(members), round(mean, 4), round(observed, 4)))
    return table


def expected_calibration_error(scores: Sequence[float], positive: Sequence[bool], bins: int = 10) -> float:
    """The row-weighted mean gap between mean score and observed positive rate over :func:`calibration_bins`."""
    table = calibration_bins(scores, positive, bins)
    total = sum(rows for _, rows, _, _ in table)
    return round(sum(rows * abs(mean - observed) for _, rows, mean, observed in table) / total, 4) if total else 0.0
