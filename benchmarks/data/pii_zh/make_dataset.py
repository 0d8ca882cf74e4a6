# ruff: noqa: RUF001  # fullwidth commas and colons are how Chinese is punctuated
"""Chinese sentences with people and places (issue 17, must-show 3). Writes zh.jsonl, the evaluation set.

Written and committed before the Chinese recognizer; never tuned on (the recognizer is tuned on ``dev.jsonl`` from
``make_dev.py``, whose templates and seed are its own). The sentences are ours (support-desk, delivery and everyday
phrasing in Simplified Chinese); the names and places come from Faker's zh_CN providers (``name``, ``last_name`` +
``first_name``, ``province``, ``city``, ``city_name``, ``district``, ``address``). Forms of address (先生, 女士, 老师)
follow a name but are not part of its span; an address's postcode is part of the address.

    python benchmarks/data/pii_zh/make_dataset.py

Rows: ``{"text", "spans": [{"type": "PERSON"|"LOCATION", "start", "end"}], "lang": "zh"}`` (offsets in code points).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/data: template_rows
from template_rows import render, write_rows

SEED = 8686
PER_TEMPLATE = 12

fake = Faker("zh_CN")
fake.seed_instance(SEED)
rng = random.Random(SEED)


def person() -> str:
    return rng.choice([fake.name(), fake.name(), fake.last_name() + fake.first_name()])


def place() -> str:
    return rng.choice(
        [
            fake.province(),
            fake.city(),
            fake.city_name(),
            f"{fake.province()}{fake.city()}",
            f"{fake.city()}{fake.district()}区",
        ]
    )


VALUES: dict[str, Callable[[], str]] = {"PERSON": person, "LOCATION": place, "ADDRESS": fake.address}

TEMPLATES = [
    "{PERSON}先生昨天打电话来询问订单。",
    "请联系负责人{PERSON}，她今天在办公室。",
    "周末我和{PERSON}在{LOCATION}见了面。",
    "我们下个月要搬到{LOCATION}去。",
    "{PERSON}女士，您的包裹已经发出。",
    "收货地址是{ADDRESS}。",
    "姓名：{PERSON}，地址：{ADDRESS}",
    "来自{LOCATION}的{PERSON}是我们的新同事。",
    "会议将在{LOCATION}总部举行。",
    "{PERSON}的家在{ADDRESS}。",
    "你好，我叫{PERSON}。",
    "暑假我们全家去了{LOCATION}旅游。",
]


def main() -> None:
    write_rows(__file__, "zh.jsonl", TEMPLATES, PER_TEMPLATE, rng, lambda template: render(template, VALUES, "zh"))


if __name__ == "__main__":
    main()
