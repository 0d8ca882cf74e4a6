"""Korean people and places from kiwipiepy's morphemes, as a spaCy pipeline presidio can read (``ko``).

spaCy's Korean models are not on the registry (placeholders) and its Korean tokenizer needs MeCab, so the ``ko``
extra brings kiwipiepy (Apache-2.0, model built at install): Kiwi splits a text into morphemes and tags proper nouns
``NNP``. This module cuts the text at Kiwi's morpheme boundaries (so particles such as 가/를/에서 are tokens of their
own, outside any span) and finds:

* **LOCATION**: runs of proper nouns ending in an administrative unit (특별시, 광역시, 도, 시, 군, 구, 읍, 면, 동,
  리...), not the first part of a compound ("대구탕"). Whole addresses are
  :class:`guard.checks.recognizers.KoreanAddressRecognizer`'s (a grammar, no Kiwi).
* **PERSON**: a word that splits into a family name (one of the common Korean surnames, a closed list of family
  names, not of people), a given name, and what Korean writes onto a name (a particle, the copula, 님/씨), as Kiwi's
  tags and cuts agree; with evidence that it names someone: Kiwi's proper-noun tag (three syllables), a title after
  it (씨, 님, 선생님, 과장...), a label before it (이름은, 수령인:, 받는 사람) or a kin or role word (친구, 고객).
  Two-syllable names need a label, or Kiwi's tag and a title. Not names: syllables of foreign words (르, 트, 스...),
  districts (…구, …동) without a title or label, words ending in 님/들/당/항.

Tuned on ``benchmarks/data/pii_ko/dev.jsonl`` (``make_dev.py``), never on the evaluation set ``ko.jsonl``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from guard.checks.segmented_pipeline import Entity, segmented_pipeline

__all__ = ["KIWI_PIPELINE", "korean_pipeline"]

KIWI_PIPELINE = "kiwipiepy"
"""What ``PiiCheck.pipelines`` says reads Korean when the ``ko`` extra is installed."""

_UNITS = (
    "특별자치시",
    "특별자치도",
    "특별시",
    "광역시",
    "도",
    "시",
    "군",
    "구",
    "읍",
    "면",
    "동",
    "리",
    "로",
    "길",
    "대로",
    "가",
)
_SURNAMES = frozenset(
    [
        "김",
        "이",
        "박",
        "최",
        "정",
        "강",
        "조",
        "윤",
        "장",
        "임",
        "한",
        "오",
        "서",
        "신",
        "권",
        "황",
        "안",
        "송",
        "류",
        "유",
        "전",
        "홍",
        "고",
        "문",
        "양",
        "손",
        "배",
        "백",
        "허",
        "남",
        "심",
        "노",
        "하",
        "곽",
        "성",
        "차",
        "주",
        "우",
        "구",
        "민",
        "진",
        "나",
        "지",
        "엄",
        "채",
        "원",
        "천",
        "방",
        "공",
        "현",
        "함",
        "변",
        "염",
        "여",
        "추",
        "도",
        "소",
        "석",
        "선",
        "설",
        "마",
        "길",
        "연",
        "위",
        "표",
        "명",
        "기",
        "반",
        "라",
        "왕",
        "금",
        "옥",
        "육",
        "인",
        "맹",
        "제",
        "모",
        "탁",
        "국",
        "어",
        "은",
        "편",
        "용",
        "예",
        "경",
        "봉",
        "사",
        "부",
        "가",
        "복",
        "태",
        "목",
        "형",
        "피",
        "두",
        "감",
        "음",
        "빈",
        "동",
        "온",
        "호",
        "범",
        "좌",
        "팽",
        "승",
        "간",
        "상",
        "갈",
        "단",
        "견",
        "당",
        "화",
        "창",
        "종",
    ]
)
_TWO_SYLLABLE_SURNAMES = ("남궁", "황보", "제갈", "선우", "독고", "사공", "서문")
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")


@cache
def _kiwi() -> Any:
    from kiwipiepy import Kiwi  # type: ignore[import-untyped]  # no type information shipped

    return Kiwi()


def _morphemes(text: str) -> list[tuple[str, str, int, int]]:
    """(surface, tag, start, end) of each morpheme, the surface cut from the text itself."""
    return [(text[t.start : t.end], t.tag, t.start, t.end) for t in _kiwi().tokenize(text)]


def _is_person(name: str) -> bool:
    if not _HANGUL.fullmatch(name) or not 2 <= len(name) <= 4:
        return False
    return name[:1] in _SURNAMES or name.startswith(_TWO_SYLLABLE_SURNAMES)


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text`` (how the word lists are written)."""
    return tuple(text.split())


_AFTER_NAME = frozenset(
    _words(
        """이 가 은 는 을 를 의 에게 에게서 한테 한테서 께 께서 와 과 랑 이랑 하고 도 만 이고 고 이다 다 입니다 이에요
    예요 이야 야 아 이며 며 이나 나 이라고 라고 이라는 라는 님 씨 님의 님이 님은 님을 님께 님과 님도 씨가 씨의 씨는
    씨를 씨와 씨에게 씨께 씨도 에 에서 에는 에서는 에도 으로 로 으로는 로는 부터 까지 처럼 보다"""
    )
) | {""}
"""What Korean writes onto a name inside its word: case particles, the copula, 님/씨 and a particle after them."""
_TITLES = (
    "님",
    "씨",
    "선생",
    "고객",
    "과장",
    "부장",
    "차장",
    "대리",
    "사원",
    "팀장",
    "실장",
    "원장",
    "대표",
    "사장",
    "회장",
    "교수",
    "박사",
    "기자",
    "작가",
    "변호사",
    "의사",
    "간호사",
)
"""Forms of address and job titles written after a name, in its word or as the next word (선생님, 과장님...)."""
_LABELS = _words(
    """이름은 이름 이름이 성명 성명은 수령인 받는사람 보내는사람 받는분 보내는분 담당자 담당 예금주 신청인 작성자 보호자
    대표자 성함 성함은"""
)
"""Labels written before a name ("이름은", "수령인:", "받는 사람"): the word after one is a name, two syllables
too."""
_KIN = _words("저는 나는 고객 환자 친구 동생 형 누나 언니 오빠 아버지 어머니 남편 아내 아들 딸 동료 학생 선배 후배")
"""Kin and role words and "I am" written before a name: evidence for a name of three syllables that Kiwi reads as a
noun ("나는 위대한" is no name)."""
_NOT_NAMES = frozenset(
    [*_TITLES, *_LABELS, *_KIN, *_words("선생님 손님 주인 기사 사람 우리 이번 지금 고객님 사장님 부장님")]
)
"""Nouns that split like a family name and a given name (선 + 생, 손 + 님) but name nobody."""
_NOT_LAST = "님들당항"
"""Last syllables no full name ends in here: 님 (a title), 들 (a plural), 당 (a party), 항 (a port)."""
_UNIT_ENDINGS = ("구", "동", "리")
"""Districts and neighbourhoods (강남구, 역삼동): a name ending so is a person only with a title or a cue."""


def _loanword(name: str) -> bool:
    """Whether ``name`` has a syllable of the vowel ㅡ with no final consonant (르, 트, 스, 크, 드...): Korean spells
    the bare consonants of foreign words so ("이탈리아" aside, "노르웨이", "이스라엘"); Korean given names do not use
    them."""
    return any((ord(c) - 0xAC00) % 28 == 0 and (ord(c) - 0xAC00) // 28 % 21 == 18 for c in name[1:])


def _with_particles(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(words) | {word + particle for word in words for particle in ("은", "는", "의", "인", "이")}


_LABEL_WORDS = _with_particles(_LABELS)
_KIN_WORDS = _with_particles(_KIN)
"""A cue as the word before the name, alone or with a particle ("이름은", "친구인", "고객의")."""
_PLACE_ENDINGS = ("시", "군", "도", "읍", "면")
"""Last syllables of places (cities, counties, provinces, towns) that Korean given names seldom end in."""
_WORD = re.compile(r"(?<![\uac00-\ud7a3])[\uac00-\ud7a3]{2,}")


_PARTICLE_STARTS = tuple(sorted(_AFTER_NAME - {""}, key=len, reverse=True))
_FUNCTIONAL = ("J", "VCP", "E", "XSN", "NNB")
"""Kiwi's tags of what follows a name in its word: particles, the copula and endings, 님 (a suffix) and 씨 (other
suffixes and bound nouns only after these two: "이순자" is no 이순 + 자)."""


def _name_candidates(word: str, start: int, morphemes: list[tuple[str, str, int, int]]) -> list[int]:
    """Lengths at which ``word`` (at ``start``) splits into a full name (family name + given name) and what
    follows a name, best first. A split is valid where the rest is a particle, the copula or an ending (by Kiwi's
    tags, or from a short list where Kiwi cut elsewhere: it cuts "장영자고" as 장영 + 자고) and no particle sits
    inside the name ("노무현과의" is 노무현 + 과의). Kiwi's cut at the split ranks first, then three syllables
    (most Korean full names), four with a two-syllable family name, two."""
    two = word.startswith(_TWO_SYLLABLE_SURNAMES)
    if not (two or word[:1] in _SURNAMES):
        return []
    end = start + len(word)
    inside = [(tag, s, e) for _, tag, s, e in morphemes if s < end and e > start]
    particles = [
        s for surface, tag, s, _ in morphemes if start < s < end and tag.startswith("J") and surface in _AFTER_NAME
    ]
    lengths = (4, 3) if two else (3, 2)  # four syllables: a two-syllable family name (남궁, 황보...)
    candidates: list[tuple[int, int, int]] = []
    for rank, length in enumerate(lengths):
        cut = start + length
        name = word[:length]
        if length > len(word) or name.endswith(_PLACE_ENDINGS) or name[-1] in _NOT_LAST or _loanword(name):
            continue
        if any(tag == "NNP" and s == start and e > cut for tag, s, e in inside):
            continue  # Kiwi reads a longer proper noun ("우루과이" is no 우루과 + 이)
        if any(s < cut for s in particles):
            continue  # a particle inside the name (not the family name, which Kiwi may read as one: 이/JKS)
        rest = [tag for tag, s, _ in inside if s >= cut]
        functional = (
            bool(rest)
            and any(s == cut for _, s, _ in inside)
            and all(t.startswith(_FUNCTIONAL) for t in rest)
            and (word[length:].startswith(("님", "씨")) or not rest[0].startswith(("XSN", "NNB")))
            and word[length:].startswith(_PARTICLE_STARTS)  # Kiwi also reads the end of "김예진" as a particle
        )
        if functional or word[length:] in _AFTER_NAME:
            candidates.append((0 if functional else 1, rank, length))
    return [length for *_, length in sorted(candidates)]


def _people(text: str, morphemes: list[tuple[str, str, int, int]]) -> list[tuple[int, int, str]]:
    """Korean full names: a word that splits into family name + given name + particle, with evidence that it is a
    person: Kiwi tags its start as a proper noun (three syllables or more), a title or 님/씨 follows, or a label or
    kin word comes before it (any length)."""
    proper_starts = {start for _, tag, start, _ in morphemes if tag == "NNP"}
    tags = {start: tag for _, tag, start, _ in reversed(morphemes)}
    found: list[tuple[int, int, str]] = []
    for match in _WORD.finditer(text):
        word, start = match.group(), match.start()
        lengths = _name_candidates(word, start, morphemes)
        if not lengths:
            continue
        length = lengths[0]
        before = re.findall(r"[\uac00-\ud7a3]+", text[max(0, start - 16) : start])
        previous = {before[-1], before[-2] + before[-1]} if len(before) > 1 else set(before)
        labelled = not previous.isdisjoint(_LABEL_WORDS)
        kin = not previous.isdisjoint(_KIN_WORDS)
        after = text[match.end() :].lstrip(" ")
        noun = tags.get(start, "").startswith("NN")
        titled = word[length:].startswith(("님", "씨")) or (noun and after.startswith(_TITLES))
        proper = start in proper_starts
        if word[:length] in _NOT_NAMES or (word[:length].endswith(_UNIT_ENDINGS) and not (labelled or titled)):
            continue  # 강남구, 서초구: a district
        # Three syllables or more: a label, a kin word, a title or Kiwi's proper-noun tag; two syllables ("손님",
        # "고객님", "피자" split like names): a label, or Kiwi's tag and a title.
        if labelled or (length >= 3 and ((kin and noun) or titled or proper)) or (proper and titled):
            found.append((start, start + length, "PERSON"))
    return found


def _places(text: str, morphemes: list[tuple[str, str, int, int]]) -> list[tuple[int, int, str]]:
    """Runs of proper nouns that end in an administrative unit (강남구, 양양군, 서울특별시 종로구), not the first
    part of a compound noun ("대구탕", a dish)."""
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(morphemes):
        _, tag, start, _ = morphemes[index]
        if tag != "NNP":
            index += 1
            continue
        last = index  # proper nouns written together or one space apart, and unit words among them
        while (
            last + 1 < len(morphemes)
            and morphemes[last + 1][1] in ("NNP", "NNG")
            and (morphemes[last + 1][1] == "NNP" or morphemes[last + 1][0].endswith(_UNITS))
            and morphemes[last + 1][2] - morphemes[last][3] <= 1
        ):
            last += 1
        run_end = morphemes[last][3]
        run = text[start:run_end]
        compound = last + 1 < len(morphemes) and morphemes[last + 1][2] == run_end and morphemes[last + 1][1] == "NNG"
        unit = run.split()[-1].endswith(_UNITS)
        if not compound and len(run) > 1 and unit and (run.endswith(_PLACE_ENDINGS) or not _is_person(run)):
            found.append((start, run_end, "LOC"))
        index = last + 1
    return found


def korean_entities(text: str) -> list[Entity]:
    """(start, end, label) of the people (``PERSON``) and places (``LOC``) in ``text``."""
    return _analyse(text)[1]


def _analyse(text: str) -> tuple[list[int], list[Entity]]:
    """Kiwi's morpheme boundaries and the entities read from them; where a person and a place overlap, the place
    (a run ending in a unit) wins."""
    morphemes = _morphemes(text)
    places = _places(text, morphemes)
    people = [p for p in _people(text, morphemes) if all(p[1] <= s or p[0] >= e for s, e, _ in places)]
    return [p for _, _, s, e in morphemes for p in (s, e)], sorted(places + people)


def korean_pipeline() -> Any:
    """A blank spaCy pipeline whose tokenizer cuts at Kiwi's morphemes and whose entities are Kiwi's people and
    places (labels ``PERSON`` and ``LOC``, which presidio's default mapping knows)."""
    _kiwi()  # loads Kiwi's model now, at PiiCheck.load, not on the first request
    return segmented_pipeline("guard_korean_entities", _analyse)
