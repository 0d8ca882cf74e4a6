"""What the ja/ko/zh PII set generators share: fill a template's ``{SLOT}``s with generated values, recording the
span of each value, and write the shuffled rows as JSONL beside the generator.

The generators run as scripts (``python benchmarks/data/pii_ko/make_dev.py``) and put this folder on ``sys.path`` to
import it. Values are drawn in template order, so a generator's output depends only on its seed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["Row", "render", "write_rows"]

Row = dict[str, object]
_SLOT = re.compile(r"\{([A-Za-z/]+)\}")


def render(
    template: str,
    values: Mapping[str, Callable[[], str]],
    lang: str,
    *,
    joiner: Callable[[str, str], str] | None = None,
) -> Row:
    """One row: each ``{SLOT}`` of ``values`` becomes a generated value with its span (ADDRESS spans are LOCATION);
    any other slot is a grammatical joiner (a Korean particle) that ``joiner(slot, text so far)`` writes."""
    text, spans, cursor = "", [], 0
    for match in _SLOT.finditer(template):
        text += template[cursor : match.start()]
        slot = match.group(1)
        cursor = match.end()
        if slot not in values:
            if joiner is None:
                raise KeyError(f"no value for {{{slot}}} in {template!r}")
            text += joiner(slot, text)
            continue
        value = values[slot]()
        spans.append(
            {"type": "LOCATION" if slot == "ADDRESS" else slot, "start": len(text), "end": len(text) + len(value)}
        )
        text += value
    return {"text": text + template[cursor:], "spans": spans, "lang": lang}


def write_rows(
    generator: str, name: str, templates: list[str], per_template: int, rng: random.Random, one: Callable[[str], Row]
) -> None:
    """``per_template`` rows of each template, shuffled by ``rng``, written to ``name`` beside ``generator``."""
    rows = [one(template) for template in templates for _ in range(per_template)]
    rng.shuffle(rows)
    out = Path(generator).with_name(name)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(out.name, len(rows), Counter(span["type"] for row in rows for span in row["spans"]))  # type: ignore[attr-defined]
