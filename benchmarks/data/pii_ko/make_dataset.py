"""Korean sentences with people and places (issue 17, must-show 3). Writes ko.jsonl.

The sentences are ours (support-desk and everyday phrasing, particles written onto the names as Korean does); the
names and places come from Faker's ko_KR providers (``name``, ``last_name`` + ``first_name``, ``city``,
``metropolitan_city``, ``province``, ``borough``, ``address``). Forms of address (씨, 님, 고객님) follow a name but
are not part of its span. The set is used for evaluation only: nothing was tuned on it.

    python benchmarks/data/pii_ko/make_dataset.py

Rows: ``{"text", "spans": [{"type": "PERSON"|"LOCATION", "start", "end"}], "lang": "ko"}`` (offsets in code points).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from faker import Faker

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


def render(template: str) -> dict[str, object]:
    text, spans, cursor = "", [], 0
    for match in re.finditer(r"\{([A-Z]+)\}", template):
        text += template[cursor : match.start()]
        slot = match.group(1)
        value = VALUES[slot]()
        spans.append(
            {"type": "LOCATION" if slot == "ADDRESS" else slot, "start": len(text), "end": len(text) + len(value)}
        )
        text += value
        cursor = match.end()
    return {"text": text + template[cursor:], "spans": spans, "lang": "ko"}


def main() -> None:
    rows = [render(t) for t in TEMPLATES for _ in range(PER_TEMPLATE)]
    rng.shuffle(rows)
    out = Path(__file__).with_name("ko.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(out.name, len(rows), Counter(s["type"] for r in rows for s in r["spans"]))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
