"""Korean development sentences with people and places (issue 17, must-show 3). Writes dev.jsonl.

The Korean pipeline is tuned on this set, never on ``ko.jsonl`` (``make_dataset.py``, the evaluation set). The two
share no template: these are written separately (shop, delivery, office and family phrasing), with the particle
chosen by the name's last syllable as Korean writes it (이/가, 은/는, 을/를, (으)로, 와/과); values come from Faker's
ko_KR providers under another seed, plus road-name addresses (``road_address``), land-lot addresses
(``land_address``) and building names Faker gives, and names written with a space between family and given name.

    python benchmarks/data/pii_ko/make_dev.py

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

SEED = 5151
PER_TEMPLATE = 10

fake = Faker("ko_KR")
fake.seed_instance(SEED)
rng = random.Random(SEED)


def person() -> str:
    return rng.choice([fake.name(), fake.name(), fake.last_name() + fake.first_name()])


def place() -> str:
    return rng.choice(
        [
            fake.city(),
            fake.metropolitan_city(),
            fake.province(),
            f"{fake.province()} {fake.city()}",
            f"{fake.metropolitan_city()} {fake.borough()}",
        ]
    )


def address() -> str:
    return rng.choice([fake.address(), fake.road_address(), fake.land_address(), fake.address()])


VALUES: dict[str, Callable[[], str]] = {"PERSON": person, "LOCATION": place, "ADDRESS": address}

TEMPLATES = [
    "고객 {PERSON}님의 주문이 취소되었습니다.",
    "어제 {PERSON}{i/ka} 매장에 들러서 환불을 요청했어요.",
    "저희 매장은 {ADDRESS}에 있어요.",
    "택배를 {ADDRESS}{ro} 보내 주세요.",
    "{LOCATION}에 사는 친구 {PERSON}{wa} 저녁을 먹었다.",
    "작년에 {LOCATION}에서 {LOCATION}{ro} 이사했어요.",
    "수령인: {PERSON} / 주소: {ADDRESS}",
    "{PERSON} 과장님이 {LOCATION} 지사로 발령이 났습니다.",
    "제 이름은 {PERSON}{ida} {LOCATION}에서 태어났어요.",
    "{PERSON} 선생님께 감사 인사를 전했습니다.",
    "출장지: {LOCATION}, 담당자: {PERSON}",
    "{ADDRESS} 근처에서 교통사고가 났대요.",
    "보내는 사람 {PERSON}, 받는 사람 {PERSON}",
    "{PERSON}{eun} 지금 {LOCATION} 본사에 있어요.",
]
"""Particles: ``{i/ka}`` 이/가, ``{eun}`` 은/는, ``{wa}`` 과/와, ``{ro}`` 으로/로, ``{ida}`` 이고/고 — chosen by
the preceding value's last syllable."""

_PARTICLES = {
    "i/ka": ("이", "가"),
    "eun": ("은", "는"),
    "wa": ("과", "와"),
    "ro": ("으로", "로"),
    "ida": ("이고", "고"),
}


def _has_final_consonant(text: str) -> bool:
    last = text[-1]
    if not "\uac00" <= last <= "\ud7a3":
        return last.isdigit() and last in "0136780"  # 영 일 삼 육 칠 팔 공: end in a consonant
    return (ord(last) - 0xAC00) % 28 != 0


def _particle(name: str, previous: str) -> str:
    with_final, without = _PARTICLES[name]
    final = _has_final_consonant(previous)
    if name == "ro" and final and (ord(previous[-1]) - 0xAC00) % 28 == 8:  # ㄹ takes 로
        return without
    return with_final if final else without


def main() -> None:
    write_rows(
        __file__,
        "dev.jsonl",
        TEMPLATES,
        PER_TEMPLATE,
        rng,
        lambda template: render(template, VALUES, "ko", joiner=_particle),
    )


if __name__ == "__main__":
    main()
