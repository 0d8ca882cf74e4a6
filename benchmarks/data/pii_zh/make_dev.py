# ruff: noqa: RUF001  # fullwidth commas and colons are how Chinese is punctuated
"""Chinese development sentences with people and places (issue 17, must-show 3). Writes dev.jsonl.

The Chinese recognizer is tuned on this set, never on ``zh.jsonl`` (``make_dataset.py``, the evaluation set): these
templates are written separately (shop, office, travel and family phrasing), the seed is another, and the values
come from Faker's zh_CN providers plus ``street_address`` and ``postcode`` composed into addresses of our own.

    python benchmarks/data/pii_zh/make_dev.py

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

SEED = 3131
PER_TEMPLATE = 10

fake = Faker("zh_CN")
fake.seed_instance(SEED)
rng = random.Random(SEED)


def person() -> str:
    return rng.choice([fake.name(), fake.last_name() + fake.first_name(), fake.name()])


def place() -> str:
    return rng.choice(
        [
            fake.city(),
            fake.province(),
            fake.city_name(),
            f"{fake.province()}{fake.city()}",
            f"{fake.city()}{fake.district()}区",
        ]
    )


def address() -> str:
    return rng.choice(
        [
            fake.address(),
            f"{fake.province()}{fake.city()}{fake.district()}区{fake.street_address()}",
            f"{fake.city()}{fake.street_address()}{rng.randint(1, 30)}楼{rng.randint(101, 2808)}室",
            fake.address(),
        ]
    )


VALUES: dict[str, Callable[[], str]] = {"PERSON": person, "LOCATION": place, "ADDRESS": address}

TEMPLATES = [
    "顾客{PERSON}的订单已经取消了。",
    "昨天{PERSON}来店里要求退款。",
    "我们的门店位于{ADDRESS}。",
    "请把快递寄到{ADDRESS}，谢谢。",
    "住在{LOCATION}的朋友{PERSON}请我吃了晚饭。",
    "去年我们从{LOCATION}搬到了{LOCATION}。",
    "收件人：{PERSON}；收件地址：{ADDRESS}",
    "{PERSON}经理被调到{LOCATION}分公司。",
    "我的名字是{PERSON}，出生在{LOCATION}。",
    "感谢{PERSON}老师的耐心指导。",
    "出差地点：{LOCATION}，负责人：{PERSON}",
    "{ADDRESS}附近发生了交通事故。",
    "寄件人{PERSON}，收件人{PERSON}",
    "{PERSON}现在在{LOCATION}的总公司。",
]


def main() -> None:
    write_rows(__file__, "dev.jsonl", TEMPLATES, PER_TEMPLATE, rng, lambda template: render(template, VALUES, "zh"))


if __name__ == "__main__":
    main()
