"""Korean sentences with people and places (issue 17, must-show 3). Writes ko.jsonl.

The sentences are ours (support-desk and everyday phrasing, particles written onto the names as Korean does); the
names and places come from Faker's ko_KR providers (``name``, ``last_name`` + ``first_name``, ``city``,
``metropolitan_city``, ``province``, ``borough``, ``address``). Forms of address (씨, 님, 고객님) follow a name but
are not part of its span. The set is used for evaluation only: nothing was tuned on it.

    python benchmarks/data/pii_ko/make_dataset.py

Rows: ``{"text", "spans": [{"type": "PERSON"|"LOCATION", "start", "end"}], "lang": "ko"}`` (offsets in code points).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/data: template_rows
from template_rows import render, write_rows

SEED = 8282
PER_TEMPLATE = 12

fake = Faker("ko_KR")
fake.seed_instance(SEED)
rng = random.Random(SEED)


def person() -> str:
    return rng.choice([fake.name(), fake.last_name() + fake.first_name()])


def place() -> str:
    return rng.choice(
        [fake.city(), fake.metropolitan_city(), fake.province(), f"{fake.metropolitan_city()} {fake.borough()}"]
    )


VALUES: dict[str, Callable[[], str]] = {"PERSON": person, "LOCATION": place, "ADDRESS": fake.address}

TEMPLATES = [
    "{PERSON} 씨가 어제 전화로 문의했습니다.",
    "담당자 {PERSON}님께 다시 연락해 주세요.",
    "주말에 {PERSON} 씨와 {LOCATION}에서 만났어요.",
    "다음 달에 {LOCATION}(으)로 이사할 예정입니다.",
    "{PERSON} 고객님, 주문하신 상품이 발송되었습니다.",
    "배송지는 {ADDRESS}입니다.",
    "이름: {PERSON}, 주소: {ADDRESS}",
    "{LOCATION} 출신인 {PERSON} 씨를 소개합니다.",
    "회의는 {LOCATION} 본사에서 열립니다.",
    "{PERSON} 씨의 집은 {ADDRESS}에 있습니다.",
    "안녕하세요, 저는 {PERSON}입니다.",
    "여름 휴가 때 가족과 {LOCATION}에 다녀왔습니다.",
]


def main() -> None:
    write_rows(__file__, "ko.jsonl", TEMPLATES, PER_TEMPLATE, rng, lambda template: render(template, VALUES, "ko"))


if __name__ == "__main__":
    main()
