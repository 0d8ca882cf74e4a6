# ruff: noqa: RUF001  # the fullwidth colon is how Japanese forms write it
"""Japanese sentences with people and places (issue 17, must-show 3). Writes ja.jsonl.

The sentences are ours (support-desk and everyday phrasing); the names and places come from Faker's ja_JP providers
(``last_name``/``first_name``/``name``, ``prefecture``, ``city``, ``town``, ``address``). Honorifics (さん, 様, 先生)
follow a name but are not part of its span. The set is used for evaluation only: nothing was tuned on it.

    python benchmarks/data/pii_ja/make_dataset.py

Rows: ``{"text", "spans": [{"type": "PERSON"|"LOCATION", "start", "end"}], "lang": "ja"}`` (offsets in code points).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/data: template_rows
from template_rows import render, write_rows

SEED = 3776
PER_TEMPLATE = 12

fake = Faker("ja_JP")
fake.seed_instance(SEED)
rng = random.Random(SEED)


def person() -> str:
    return rng.choice([fake.name(), fake.last_name() + fake.first_name(), fake.last_name()])


def place() -> str:
    return rng.choice([fake.prefecture(), fake.city(), fake.prefecture() + fake.city()])


VALUES: dict[str, Callable[[], str]] = {"PERSON": person, "LOCATION": place, "ADDRESS": fake.address}

TEMPLATES = [
    "{PERSON}さんから問い合わせがありました。",
    "担当の{PERSON}様に折り返しお電話ください。",
    "昨日、{PERSON}さんと{LOCATION}で会いました。",
    "来月から{LOCATION}に引っ越す予定です。",
    "{PERSON}先生の授業は毎週火曜日です。",
    "お届け先は{ADDRESS}です。",
    "住所：{ADDRESS}、氏名：{PERSON}",
    "{LOCATION}出身の{PERSON}さんを紹介します。",
    "会議は{LOCATION}の本社で行います。",
    "{PERSON}さんの自宅は{ADDRESS}にあります。",
    "私は{PERSON}と申します。よろしくお願いします。",
    "夏休みに家族で{LOCATION}へ旅行しました。",
]


def main() -> None:
    write_rows(__file__, "ja.jsonl", TEMPLATES, PER_TEMPLATE, rng, lambda template: render(template, VALUES, "ja"))


if __name__ == "__main__":
    main()
