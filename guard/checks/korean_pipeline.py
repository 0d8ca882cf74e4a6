"""Korean people and places from kiwipiepy's proper-noun tags, as a spaCy pipeline presidio can read (``ko``).

spaCy's Korean models are not on the registry (placeholders) and its Korean tokenizer needs MeCab, so the ``ko``
extra brings kiwipiepy (Apache-2.0, model built at install): Kiwi splits a text into morphemes and tags proper nouns
``NNP``. This module cuts the text at Kiwi's morpheme boundaries (so particles such as 가/를/에서 are tokens of their
own, outside any span) and types each run of proper nouns:

* **LOCATION**: the run ends in, or is followed by, an administrative unit (특별시, 광역시, 도, 시, 군, 구, 읍, 면,
  동, 리, 로, 길, 대로): Korean addresses name their units in this order, and a whole address (units, road, building
  number) is one span.
* **PERSON**: two to four Hangul syllables that start with one of the common Korean surnames (a handful of family
  names cover most of the population; the list is of surnames, not of people), or any run followed by a
  form of address (씨, 님, 선생님...).
"""

from __future__ import annotations

import itertools
import re
from functools import cache
from typing import Any

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
_ADDRESS_OF = frozenset(
    {"씨", "님", "선생", "선생님", "고객", "고객님", "교수", "교수님", "대표", "과장", "부장", "사장", "군", "양"}
)
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


def korean_entities(text: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of the people (``PERSON``) and places (``LOC``) in ``text``."""
    morphemes = _morphemes(text)
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(morphemes):
        _, tag, start, _ = morphemes[index]
        if tag != "NNP":
            index += 1
            continue
        last = index  # proper nouns written together or one space apart, with the unit words between them
        while (
            last + 1 < len(morphemes)
            and morphemes[last + 1][1] in ("NNP", "NNG", "SN", "SO")
            and (
                morphemes[last + 1][1] == "NNP"
                or morphemes[last + 1][0].endswith(_UNITS)
                or morphemes[last][0].endswith(_UNITS)
            )
            and morphemes[last + 1][2] - morphemes[last][3] <= 1
        ):
            last += 1
        run_end = morphemes[last][3]
        run = text[start:run_end]
        following = morphemes[last + 1][0] if last + 1 < len(morphemes) else ""
        split_name = (  # a given name Kiwi split: 이영 + 희
            len(run) == 2
            and last + 1 < len(morphemes)
            and morphemes[last + 1][1].startswith("NN")
            and morphemes[last + 1][2] == run_end
            and len(following) == 1
            and _is_person(run + following)
        )
        if any(part.endswith(_UNITS) for part in run.split()) and len(run) > 1 and not _is_person(run):
            found.append((start, run_end, "LOC"))
        elif split_name:
            found.append((start, run_end + 1, "PERSON"))
            last += 1
        elif _is_person(run) or (following in _ADDRESS_OF and _HANGUL.fullmatch(run)):
            found.append((start, run_end, "PERSON"))
        index = last + 1
    return found


def korean_pipeline() -> Any:
    """A blank spaCy pipeline whose tokenizer cuts at Kiwi's morphemes and whose entities are Kiwi's people and
    places (labels ``PERSON`` and ``LOC``, which presidio's default mapping knows)."""
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc

    def tokenize(text: str) -> Doc:
        cuts = sorted({0, len(text)} | {p for _, _, s, e in _morphemes(text) for p in (s, e)})
        words, spaces = [], []
        for left, right in itertools.pairwise(cuts):
            piece = text[left:right]
            for match in re.finditer(r"\S+", piece):
                words.append(match.group())
                spaces.append(left + match.end() < len(text) and text[left + match.end()].isspace())
        doc = Doc(nlp.vocab, words=words, spaces=spaces)
        if doc.text != text:  # whitespace runs the simple cut cannot rebuild: no entities rather than wrong ones
            return Doc(nlp.vocab, words=[text], spaces=[False]) if text else doc
        return doc

    def entities(doc: Doc) -> Doc:
        spans = [doc.char_span(s, e, label=label, alignment_mode="expand") for s, e, label in korean_entities(doc.text)]
        doc.ents = spacy.util.filter_spans([span for span in spans if span is not None])
        for token in doc:
            token.lemma_ = token.lower_
        return doc

    if not Language.has_factory("guard_korean_entities"):
        Language.component("guard_korean_entities", func=entities)
    nlp = spacy.blank("xx")
    nlp.tokenizer = tokenize
    nlp.add_pipe("guard_korean_entities")
    return nlp
