"""The shadow report (``guard policy shadow-report``): how often the shadow candidates evaluated live agreed with the
active policy, and where they differed."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from guard.evaluation.stored import ARROW, add, new_group

__all__ = ["shadow_summary"]


def shadow_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the shadow candidate agreed with the active policy, and where they differed."""
    pairs: defaultdict[str, dict[str, Any]] = defaultdict(new_group)
    differing: Counter[str] = Counter()
    agreed = errors = 0
    for row in rows:
        shadow = row["shadow"]
        agreed += bool(shadow.get("agree"))
        errors += "error" in shadow
        add(pairs[f"{row['decision']}{ARROW}{shadow['decision']}"], row["decision_id"])
        if not shadow.get("agree"):
            active = {(f["check"], f["type"], f["action"]) for f in row["findings"]}
            candidate = {(f["check"], f["type"], f["action"]) for f in shadow["findings"]}
            differing.update(f"shadow only: {c}/{t} ({a})" for c, t, a in candidate - active)
            differing.update(f"active only: {c}/{t} ({a})" for c, t, a in active - candidate)
    return {
        "rows": len(rows),
        "agreed": agreed,
        "agreement_rate": agreed / len(rows) if rows else None,
        "shadow_errors": errors,
        "shadows": sorted({f"{r['shadow']['name']} {r['shadow']['version']}" for r in rows}),
        "pairs": dict(sorted(pairs.items(), key=lambda item: -item[1]["count"])),
        "top_differences": differing.most_common(10),
    }
