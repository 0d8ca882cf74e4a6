# ruff: noqa: RUF001  # curly apostrophes and quotes are part of the text these recognizers read
"""spaCy's people and places, cleaned and completed with cue phrases (replaces presidio's ``SpacyRecognizer``).

spaCy's entities are split at line breaks, trailing words and company names trimmed, and people inside street
addresses dropped; people come too from cues spaCy's small model misses (titles, "my name is", "Hi ...,", speech
verbs, kinship words, lists, repeated mentions) and places from cues (a country gazetteer, "lives in ...",
"flew to ...", a town line above a country line). The country names come from ``phonenumbers``' region data; the
honorifics and cue phrases are general English naming conventions written here. No list of personal names is used.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guard.checks.recognizers._text import (
    NOT_PLACES,
    ORG_WORDS,
    PARTICLES,
    TITLE,
    is_capitalised,
    overlaps,
    recognizer_result,
    title_start,
    word_set,
)
from guard.checks.recognizers.address_parser import find_street_addresses

__all__ = ["NerRecognizer"]

CUE_PERSON_SCORE = 0.9
"""Above spaCy's 0.85: "my son Jordan" is a person whatever the small model thinks."""
CUE_PLACE_SCORE = 0.7
REPEAT_SCORE = 0.7
LIST_SCORE = 0.86
COUNTRY_SCORE = 0.85


@cache
def _countries() -> frozenset[str]:
    from phonenumbers.geodata.locale import LOCALE_DATA

    names = {entry["aa"] for entry in LOCALE_DATA.values() if not entry.get("aa", "*").startswith("*")}
    names |= {"USA", "U.S.A.", "UK", "U.K.", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland"}
    names |= {"Czechia", "Holland", "Ivory Coast", "Burma", "Republic of Korea", "Korea"}
    names |= _US_STATES
    return frozenset(names)


_US_STATES = word_set(
    """Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho Illinois
    Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota Mississippi Missouri Montana
    Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah Vermont Virginia Washington Wisconsin
    Wyoming"""
) | {
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "West Virginia",
    "District of Columbia",
}


@cache
def _country_pattern() -> re.Pattern[str]:
    names = sorted(_countries(), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(name) for name in names) + r")(?![\w-])")


_CAP_NAME = r"(?:[^\W\d_a-z](?:[\w’-]|'(?!s\b))*)"
"""A capitalised name word (``O'Neill``, ``Jean-Luc``, ``Ólafsdóttir``), not taking a possessive ``'s``."""
_PERSON_NAME = rf"{_CAP_NAME}(?:\s+(?:[A-Z]\.?\s+)?{_CAP_NAME}){{0,2}}"
"""One to three capitalised words, with an optional middle initial."""
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Rev|Fr|Capt|Col|Sgt|Lt|Hon)"

_DETERMINERS = word_set("a an the my your his her our their this that these those")
_HONORIFIC_WORD = re.compile(rf"(?i:{_HONORIFIC})\.?|{TITLE}")
_NAME_SUFFIX = r"(?:\s+(?:Jr|Sr|II|III|IV|MD|DDS|DVM|PhD|Esq)\.?)?"
_NAME_THEN_SUFFIX = _PERSON_NAME + _NAME_SUFFIX
_PERSONAL_THINGS = (
    r"(?:address|home|house|flat|apartment|phone|number|mobile|email|e-mail|account|card|birthday|wife|husband|"
    r"partner|son|daughter|mother|father|brother|sister|family|car|office|name|passport|parents)"
)

_PERSON_CUES = [
    re.compile(rf"(?<![\w.])(?:(?i:{_HONORIFIC})\.?|{TITLE})\s+(?P<name>{_NAME_THEN_SUFFIX})"),
    re.compile(
        r"\b(?i:(?:my|his|her|their|your|the)\s+(?:(?:first|last|full|maiden|middle|family|given)\s+)?"
        r"(?:name|surname)(?:'s|\s+is|\s+was|:)?|named|called|I'm|I\s+am|this\s+is|it's\s+under|"
        r"under\s+the\s+name(?:\s+of)?|signed,?|regards,?|sincerely,?)"
        rf"\s+(?P<name>{_PERSON_NAME})"
    ),
    re.compile(rf"(?:^|\n)\s*(?i:name|full name|patient|customer|contact|from|to|attn)\s*:\s*(?P<name>{_PERSON_NAME})"),
    re.compile(rf"\b(?i:hi|hello|hey|dear|thanks|thank\s+you|bye|good\s+morning),?\s+(?P<name>{_PERSON_NAME})"),
    re.compile(
        r"\b(?i:(?:my|his|her|our|their|your)\s+(?:\w+\s+)?"
        r"(?:kid|son|daughter|child|wife|husband|partner|spouse|brother|sister|mother|father|mom|mum|dad|"
        r"friend|boss|colleague|manager|uncle|aunt|cousin|nephew|niece|grandfather|grandmother|grandson|"
        r"granddaughter|guardian|neighbou?r|fianc[ée]e?|girlfriend|boyfriend)(?:'s\s+name)?(?:\s+is|\s+was)?)"
        rf"\s+(?P<name>{_PERSON_NAME})"
    ),
    re.compile(
        r"\b(?i:said|says|asked|asks|shouted(?:\s+at)?|yelled(?:\s+at)?|replied|told|wrote|"
        r"(?:speak|spoke|talk|talked|talking|meet|met|call|called|email|contact|ask)\s+(?:to|with)|heard|join\s+accounts\s+with)"
        rf"\s+(?:(?i:ms|mr|mrs|dr)\.?\s+)?(?P<name>{_PERSON_NAME})"
    ),
    re.compile(rf"(?P<name>{_PERSON_NAME})\s+(?i:said|says|asked|shouted|replied|wrote|told|smiled|laughed)\b"),
    re.compile(rf"(?:^|\n)\s*(?P<name>{_CAP_NAME}):\s*[\"“]"),
    # A dialogue line "Garrett: Remember me?" (form labels such as "Phone:" are excluded below).
    re.compile(rf"(?:^|\n)\s*(?P<name>{_CAP_NAME}):[ \t]+[\"“A-Z]"),
    # A possessive with something only people have: "Esko's address", "Maria's husband".
    re.compile(rf"(?P<name>{_PERSON_NAME})['’]s\s+(?:new\s+|old\s+|home\s+)?(?i:{_PERSONAL_THINGS})\b"),
    # A vocative opening a sentence: "Sue, can I please speak to your boss?"
    re.compile(
        rf"(?:^|[.!?]\s+)(?P<name>{_CAP_NAME}),\s+(?i:can|could|would|will|do|did|please|i|you|thanks|thank|are|is|"
        r"have|what|where|when|how|why|listen|look)\b"
    ),
    re.compile(rf"\b(?i:named|called)\s+(?i:him|her|them|me|it)\s+(?P<name>{_PERSON_NAME})"),
    re.compile(rf"(?P<name>{_PERSON_NAME})\s+(?i:lives|lived|works|worked|studies|studied)\s+(?i:at|in|on|for|as)\b"),
]
"""Phrases that announce a person's name; the name itself must be capitalised."""

_PLACE_CUES = [
    re.compile(
        r"\b(?i:live[sd]?|living|grew\s+up|born|raised|moved(?:\s+here)?|moving|relocated|flew|fly|flying|"
        r"travel(?:l)?(?:ing|ed)?|went|going|coming|arrived|arriving|based|located|stay(?:ed|ing)?|"
        r"return(?:ed|ing)?|headed|heading|drove|driving|trip|vacation|holiday|I'm|I\s+am|we're|we\s+are|"
        r"resident|residing|domiciled|registered|branch|office|store|clinic)"
        r"\s+(?i:back\s+)?(?i:in|to|from|at|near|into|around)\s+"
        rf"(?P<place>{_CAP_NAME}(?:\s+{_CAP_NAME}){{0,2}})"
    ),
    re.compile(
        rf"\b(?i:visit(?:ed|ing)?|(?:city|town|village|county|province|region|capital)(?:\s+of)?)\s+"
        rf"(?P<place>{_CAP_NAME}(?:\s+{_CAP_NAME}){{0,2}})"
    ),
    re.compile(rf"(?P<place>{_CAP_NAME})\s+(?i:bridge|river|airport|harbou?r|train\s+station|city\s+cent(?:er|re))\b"),
]
"""Phrases that announce a place: "lives in X", "flew to X", "the city of X", "X airport"."""

_ORG_WORDS = ORG_WORDS  # shared with the toponym recognizer
_LABEL_WORDS = word_set(
    """phone mobile desk fax email e-mail website address suite apt apartment street road avenue office tel name
    date when where what who why how time subject note answer question re fw to from cc bcc info personal
    billing shipping zip postcode total amount"""
)


_NOT_NAMES = word_set(
    """hi hello hey dear sorry thanks thank cheers okay ok yes no please i'm im i'd i'll human ai assistant user system
    bot chatbot model idiot moron stupid react langchain llm gpt api json card map port ship order build payment
    refund contact delivery account passport licence license patient applicant recipient invoice ticket iban bic
    swift student claimant cardholder policyholder holder beneficiary payee payer tenant guarantor passenger witness
    insured employee customer client member birthplace hometown residence domicile origin destination univ dott"""
)
"""Greetings, role words, insults and code words spaCy's small model tags as people or places ("Hi", "Human",
"AI", "Idiot", "ReAct"): never a name on their own, and stripped from the front of a name ("I'm Lisa Walker")."""


_FIELD_LABEL = re.compile(r"[ \t]*(?:[:=]|[-–—][ \t])")  # dashes separate fields
_FIELD_START = re.compile(r"(?:^|[\n|;/]|[:=][ \t]*[^\n|;/]*?[|;/])[ \t]*$")


def _is_field_label(text: str, start: int, end: int) -> bool:
    """A span that starts a line or a field and is followed by a colon, equals sign or spaced dash is a form label
    ("Birthplace: ...", "Payee = ..."), not a name."""
    return bool(_FIELD_LABEL.match(text, end)) and bool(_FIELD_START.search(text, max(0, start - 80), start))


def _is_organisation(text: str, start: int, end: int) -> bool:
    """A name holding or followed by a company word ("Alpha Growth PLC", "MasTec Inc") names an organisation."""
    following = re.match(r"[ \t]+([\w.]+)", text[end : end + 40])
    words = [w.strip(".,'’").lower() for w in text[start:end].split()]
    return any(w in _ORG_WORDS for w in words) or (following is not None and following.group(1).lower() in _ORG_WORDS)


def _could_be_a_name(span: str) -> bool:
    """False for spans that are only non-name words, or carry digits (``Port 80:443``, IBAN fragments, IDs)."""
    words = [w.strip(".,;:!?'\"()").lower().replace("’", "'") for w in span.split()]
    if any(char.isdigit() for char in span) and not re.search("[\uac00-\ud7a3\u4e00-\u9fff]", span):
        # Korean and Chinese addresses carry their numbers
        return False
    return not all(word in _NOT_NAMES or not word for word in words)


def _strip_to_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim an NER 'person' to the name: first line only, from its first capitalised word through its last,
    without trailing label/unit words ("Felix Biermann\\nPhone" -> Felix Biermann). None if nothing is left or it is
    a company."""
    segment = text[start:end]
    cut = segment.find("\n")
    if cut >= 0:
        segment = segment[:cut]
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", segment)]
    while words and (
        not is_capitalised(words[0][2])
        or _HONORIFIC_WORD.fullmatch(words[0][2])
        or words[0][2].strip(".,;:!?").lower().replace("’", "'") in _NOT_NAMES
    ):
        words.pop(0)
    if words and words[0][2].lower() in _DETERMINERS:
        return None  # "A REAL PERSON", "The Big Three": a name does not start with an article
    kept: list[tuple[int, int, str]] = []
    for word in words:
        bare = word[2].strip("\"'“”()").rstrip(".,;:!?")
        if (
            not bare
            or not (is_capitalised(bare) or (bare.lower() in PARTICLES and kept))
            or bare.lower() in _LABEL_WORDS
        ):
            break
        kept.append(word)
        if word[2].rstrip("\"'”)").endswith((",", ";", ":", "!", "?")):
            break
    while kept and kept[-1][2].strip(".,").lower() in PARTICLES:
        kept.pop()
    if not kept or any(w[2].strip(".,").lower() in _ORG_WORDS for w in kept):
        return None
    last = kept[-1]
    name_end = last[0] + len(last[2].rstrip(".,;:!?\"'”)"))
    if last[2].rstrip(".,;:!?\"'”)").endswith(("'s", "’s")):
        name_end -= 2
    if re.fullmatch(r"[A-Z]\.", last[2]):  # keep an initial's dot
        name_end = last[0] + 2
    return start + kept[0][0], start + name_end


_NAME_PARTICLES = PARTICLES - {"of", "the", "e", "el", "al", "t", "'t", "and"}
_PARTICLES_THEN_NAME = re.compile(
    rf"(?:[ \t]+|-)(?:(?:{'|'.join(sorted(_NAME_PARTICLES, key=len, reverse=True))})[ \t]+){{1,3}}{_CAP_NAME}"
)
_OF_PLACE = re.compile(rf"[ \t]+of[ \t]+(?P<place>{_CAP_NAME}(?:[ \t]+{_CAP_NAME}){{0,2}})")


def _with_particles(text: str, person: tuple[int, int, float, str]) -> tuple[int, int, float, str]:
    """A name continued by particles and a capitalised word ("Chris" + " van der Linden") is one name."""
    match = _PARTICLES_THEN_NAME.match(text, person[1])
    return (person[0], match.end(), *person[2:]) if match else person


def _of_places(text: str, people: list[tuple[int, int, float, str]]) -> list[tuple[int, int, float, str]]:
    """ "<person> of <Place>" names where the person is from ("Ana Ruiz of Lugo")."""
    found = []
    for person in people:
        if (match := _OF_PLACE.match(text, person[1])) is not None:
            found.append((match.start("place"), match.end("place"), CUE_PLACE_SCORE, "of_place"))
    return found


class NerRecognizer(LocalRecognizer):  # type: ignore[misc]
    """spaCy's people and places, cleaned and completed with cue phrases (replaces presidio's SpacyRecognizer)."""

    ENTITIES = ["DATE_TIME", "NRP", "LOCATION", "PERSON", "ORGANIZATION"]

    def __init__(self, supported_language: str = "en", ner_strength: float = 0.85) -> None:
        self.ner_strength = ner_strength
        super().__init__(
            supported_entities=list(self.ENTITIES), supported_language=supported_language, name="SpacyRecognizer"
        )

    def load(self) -> None:
        """Nothing to load: the analyzer's NLP engine has already run spaCy."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        addresses = find_street_addresses(text)
        shouting = sum(c.isupper() for c in text) > 0.8 * sum(c.isalpha() for c in text)
        people: list[tuple[int, int, float, str]] = []
        places: list[tuple[int, int, float, str]] = []
        others: list[RecognizerResult] = []
        for ent, score in zip(
            getattr(nlp_artifacts, "entities", ()) or (), getattr(nlp_artifacts, "scores", ()) or (), strict=False
        ):
            label = ent.label_
            if label in ("PERSON", "LOCATION") and _is_field_label(text, ent.start_char, ent.end_char):
                continue
            if label == "PERSON":
                if shouting:
                    continue  # an all-capitals text gives the model no case to go by ("A REAL PERSON")
                if (trimmed := _strip_to_name(text, ent.start_char, ent.end_char)) is not None:
                    people.append((*trimmed, float(score), "spacy"))
            elif label == "LOCATION":
                for part in re.finditer(r"[^\n]+", text[ent.start_char : ent.end_char]):
                    start = ent.start_char + part.start()
                    end = ent.start_char + len(part.group().rstrip(" .,'’"))
                    start += len(part.group()) - len(part.group().lstrip(" "))
                    if end > start:
                        places.append((start, end, float(score), "spacy"))
            elif label in entities and label in self.supported_entities:
                others.append(recognizer_result(label, ent.start_char, ent.end_char, float(score), self, "spacy"))
        places += self._cued_places(text)
        people = [p for p in people if not self._is_place(text, p, places)]
        people += self._cued_people(text)
        people += self._list_mates(text, people)
        people += self._repeats(text, people)

        people = [_with_particles(text, person) for person in people]
        places += _of_places(text, people)
        # A title before a name belongs to it ("Dr Ana Ruiz"), as readers and the data sets count it.
        people = [(title_start(text, start), end, score, rule) for start, end, score, rule in people]
        # One label per stretch of text: addresses first, then the strongest evidence (longer spans on ties).
        candidates = [("LOCATION", *p) for p in places] + [("PERSON", *p) for p in people]
        results = others
        taken: list[tuple[int, int]] = list(addresses)
        for label, start, end, score, rule in sorted(candidates, key=lambda c: (-c[3], c[1] - c[2])):
            if not _could_be_a_name(text[start:end]) or _is_organisation(text, start, end):
                continue
            if label in entities and not overlaps((start, end), taken):
                results.append(recognizer_result(label, start, end, score, self, rule))
                taken.append((start, end))
        return results

    @staticmethod
    def _is_place(text: str, person: tuple[int, int, float, str], places: list[tuple[int, int, float, str]]) -> bool:
        """A spaCy 'person' that is a listed country or that a place cue introduces is a place."""
        start, end = person[0], person[1]
        return any(p[0] <= start and end <= p[1] for p in places)

    @staticmethod
    def _cued_places(text: str) -> list[tuple[int, int, float, str]]:
        found: list[tuple[int, int, float, str]] = []
        countries = _countries()
        for match in _country_pattern().finditer(text):
            found.append((match.start(), match.end(), COUNTRY_SCORE, "country"))
            # A town on the line above a country line ("Gudhjem\nDenmark"): an address without a street.
            line_start = text.rfind("\n", 0, match.start()) + 1
            if text[line_start : match.start()].strip() == "" and line_start >= 2:
                above_end = line_start - 1
                above_start = text.rfind("\n", 0, above_end) + 1
                above = text[above_start:above_end]
                words = above.split()
                if 1 <= len(words) <= 3 and all(is_capitalised(w) for w in words) and above.strip() not in countries:
                    offset = above_start + len(above) - len(above.lstrip())
                    found.append((offset, offset + len(above.strip()), CUE_PLACE_SCORE, "town_line"))
        for pattern in _PLACE_CUES:
            for match in pattern.finditer(text):
                words = match.group("place").split()
                while words and words[-1].lower() in NOT_PLACES:
                    words.pop()
                if words and words[0].lower() not in NOT_PLACES:
                    start = match.start("place")
                    end = start + len(" ".join(words))
                    if text[start:end] == " ".join(words):
                        found.append((start, end, CUE_PLACE_SCORE, "place_cue"))
        return found

    @staticmethod
    def _cued_people(text: str) -> list[tuple[int, int, float, str]]:
        found: list[tuple[int, int, float, str]] = []
        for pattern in _PERSON_CUES:
            for match in pattern.finditer(text):
                trimmed = _strip_to_name(text, match.start("name"), match.end("name"))
                name = text[trimmed[0] : trimmed[1]].lower() if trimmed is not None else ""
                if trimmed is not None and name not in NOT_PLACES and name not in _LABEL_WORDS:
                    found.append((*trimmed, CUE_PERSON_SCORE, "name_cue"))
        return found

    @staticmethod
    def _list_mates(text: str, people: list[tuple[int, int, float, str]]) -> list[tuple[int, int, float, str]]:
        """In a list of three or more single capitalised words ("Tara, Paul, Austin and James"), one known person
        makes them all people."""
        found: list[tuple[int, int, float, str]] = []
        item = rf"{_CAP_NAME}"
        for match in re.finditer(rf"{item}(?:,\s+{item}){{1,}},?\s+(?:and|or|&)\s+{item}", text):
            members = list(re.finditer(item, match.group()))
            spans = [(match.start() + m.start(), match.start() + m.end()) for m in members]
            if any((p[0] <= s and e <= p[1]) or s <= p[0] < e for s, e in spans for p in people):
                found += [(s, e, LIST_SCORE, "name_list") for s, e in spans if text[s:e] not in {"And", "Or"}]
        return found

    @staticmethod
    def _repeats(text: str, people: list[tuple[int, int, float, str]]) -> list[tuple[int, int, float, str]]:
        """Other mentions of a name already found, whole or by one of its words ("Isolda Marrero ... Marrero")."""
        found: list[tuple[int, int, float, str]] = []
        forms: set[str] = set()
        for start, end, _, _ in people:
            name = text[start:end]
            forms.add(name)
            forms |= {w for w in name.split() if len(w) > 2 and is_capitalised(w) and not w.endswith(".")}
        for form in sorted(forms, key=len, reverse=True):
            for match in re.finditer(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text):
                found.append((match.start(), match.end(), REPEAT_SCORE, "repeat"))
        return found
