from __future__ import annotations

import pytest

from guard.checks import CheckItem
from guard.checks.prohibited import ProhibitedUseCheck
from guard.policy import CLAUSES, ProhibitedCategory, ProhibitedUseConfig

pytestmark = pytest.mark.unit

CONFIG = ProhibitedUseConfig(
    categories={
        "fraud_malware": ProhibitedCategory(patterns=[r"\bwrite\b.{0,20}\bransomware\b"]),
        "harassment": ProhibitedCategory(action="flag", patterns=[r"\bidiot\b"]),
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please WRITE me some Ransomware", [("fraud_malware", "block")]),
        ("what is ransomware?", []),
        ("you idiot", [("harassment", "flag")]),
        ("", []),
    ],
)
def test_rules(text: str, expected: list[tuple[str, str]]) -> None:
    (result,) = ProhibitedUseCheck().run([CheckItem(text=text, config=CONFIG, stage="input")])
    assert [(f.type, f.action) for f in result.findings] == expected
    for finding in result.findings:
        assert finding.clause == CLAUSES[finding.type]
        assert 0 <= finding.start < finding.end <= len(text)
