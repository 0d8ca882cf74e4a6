# ruff: noqa: RUF001  # curly apostrophes and quotes are part of the text these recognizers read
"""Recognizers that make presidio good at what its defaults miss: names, places, addresses, loose numbers.

``PiiCheck.load`` registers :func:`extra_recognizers` and first removes any default recognizer with the same
``name``, so the recognizers named ``SpacyRecognizer``, ``PhoneRecognizer`` and ``CreditCardRecognizer`` here replace
presidio's. (Their classes have other names: presidio's registry loader finds recognizer classes by class name among
all subclasses, and a second ``PhoneRecognizer`` class would shadow its own.)

* :class:`NerRecognizer` (replaces ``SpacyRecognizer``): spaCy's entities, cleaned (split at line breaks, trailing
  words and company names trimmed, people inside street addresses dropped), plus people from cues spaCy's small model
  misses (titles, "my name is", "Hi ...,", speech verbs, kinship words, lists, repeated mentions) and places from
  cues (a country gazetteer, "lives in ...", "flew to ...", a town line above a country line).
* :class:`StreetAddressRecognizer`: street addresses as one span, from the house number or PO box through the
  secondary unit, town, state code, country and postcode, on one line or several.
* :class:`LenientPhoneRecognizer`: numbers in any national format (digit groups), reported when a phone word is
  near or the number is valid in international form or for a common region; presidio's knows eight regions.
* :class:`CardNumberRecognizer`: every issuer range and length 12-19 (Maestro, 2-series Mastercard, 19-digit Visa,
  JCB 2131/1800...), Luhn-validated; presidio's pattern only covers some prefixes and lengths.

Sources: the country names come from ``phonenumbers``' region data; the street-type words, secondary-unit words,
honorifics and cue phrases are general English/European address and naming conventions written here. No list of
personal names is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from presidio_analyzer import EntityRecognizer, LocalRecognizer, RecognizerResult

__all__ = [
    "CardNumberRecognizer",
    "LenientPhoneRecognizer",
    "NerRecognizer",
    "StreetAddressRecognizer",
    "extra_recognizers",
    "find_street_addresses",
]

ADDRESS_SCORE = 0.9
"""Above spaCy's 0.85, so a 'person' spaCy sees inside an address loses the overlap."""
CUE_PERSON_SCORE = 0.9
"""Above spaCy's 0.85: "my son Jordan" is a person whatever the small model thinks."""
CUE_PLACE_SCORE = 0.7
REPEAT_SCORE = 0.7
LIST_SCORE = 0.86
COUNTRY_SCORE = 0.85


def extra_recognizers() -> list[EntityRecognizer]:
    """The recognizers PiiCheck adds to presidio's (replacing those with the same name)."""
    return [NerRecognizer(), StreetAddressRecognizer(), LenientPhoneRecognizer(), CardNumberRecognizer()]


# --------------------------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    text: str

    @property
    def bare(self) -> str:
        """The token without surrounding quotes/brackets and trailing sentence punctuation (``"Paris."`` -> Paris)."""
        return self.text.strip("\"'“”‘’()[]").rstrip(".?!:;")


_TOKEN = re.compile(r"[^\s,;]+")


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _is_capitalised(word: str) -> bool:
    """Starts with an upper-case letter, or a letter of a script without case (Greek capitals count as upper)."""
    first = word[:1]
    return bool(first) and first.isalpha() and not first.islower()


def _ends_sentence(token: _Token) -> bool:
    """``France.`` or ``States?`` end an address; ``St.``, ``Apt.`` and initials do not."""
    text = token.text.rstrip("\"'”’)")
    if text.endswith(("?", "!", ":")):
        return True
    if not text.endswith("."):
        return False
    word = text[:-1].lower()
    return not (len(word) <= 1 or word in _ABBREVIATIONS or "." in word)


# --------------------------------------------------------------------------------------------------------------
# Street addresses


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Street-type words written after the name ("Main Street", "Grazer Strasse", "Ingvald Scheys gate") and before it
# ("Rue de Rivoli", "Via Roma", "ul. Asnyka"); some go either way.
_STREET_SUFFIXES = _words(
    """street st str road rd avenue ave av lane ln drive dr way court ct place pl boulevard blvd terrace ter tce
    crescent cres close square sq parkway pkwy highway hwy alley row circle cir trail trl path walk plaza loop
    pike expressway freeway turnpike causeway mews grove gardens quay wharf embankment esplanade broadway
    strasse straße gasse weg allee platz ring gate gata gatan vei veien vegen vej vägen gade laan straat dreef
    plein kade tee tie katu kuja ulica utca út útja"""
)
_STREET_PREFIXES = _words(
    """rue rua r via viale vicolo piazza piazzale corso largo avenida avda avenue av calle c/ carrera camino ctra
    carretera paseo plaza praça travessa estrada rodovia alameda chemin quai allée boulevard bd ul ulica aleja
    οδός οδος πλατεία λεωφόρος"""
)
_STREET_WORDS = _STREET_SUFFIXES | _STREET_PREFIXES
# Street-type endings of one-word street names: "Vallerstrasse", "Roodborstweg", "Hermiankatu", "Marsveien".
_STREET_ENDINGS = tuple(
    _words(
        """strasse straße gasse weg vej veien vegen gata gatan vägen gade stræde vænget katu kuja tie laan straat
        dreef plein gracht kade allee alléen platz ulica utca útja"""
    )
)
_SECONDARY = _words("apt apartment suite ste unit flat floor fl room rm bldg building lot")
_PARTICLES = _words(
    """de du des la le les del della dei di da do dos das van von der den ten ter y e el al of the t 't"""
)
_ABBREVIATIONS = _words(
    """st str rd ave av avda ln dr ct pl blvd bd ter tce cres sq pkwy hwy cir trl ctra ul r c apt ste fl rm bldg
    p.o po no nr mt ft n s e w"""
)
_NOT_PLACES = _words(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december please phone mobile desk fax tel email e-mail website office i we you he
    she they it the a an and or but"""
)

_HOUSE_NUMBER = re.compile(r"\d{1,6}[A-Za-z]?\.?")
_POSTCODE = re.compile(r"\d{3,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?")
_STATE_CODE = re.compile(r"[A-Z]{2,3}")
_MILITARY_POST = frozenset({"APO", "FPO", "DPO"})
_SHIP_PREFIX = frozenset({"USNS", "USS", "USNV", "USCGC"})


def _word(token: _Token) -> str:
    return token.bare.lower().rstrip(".")


def _is_number(token: _Token) -> bool:
    return bool(_HOUSE_NUMBER.fullmatch(token.text.rstrip(",")))


def _is_street_word(token: _Token) -> bool:
    return _word(token) in _STREET_WORDS


def _is_name_word(token: _Token) -> bool:
    bare = token.bare
    word = bare.lower().rstrip(".")
    return _is_capitalised(bare) and word not in _NOT_PLACES and word not in _SECONDARY


def _is_secondary(tokens: Sequence[_Token], i: int) -> int:
    """How many tokens a secondary unit at ``i`` takes (``Apt. 12``, ``Suite 3``, ``#4``), 0 if none."""
    token = tokens[i]
    if re.fullmatch(r"#\d+[A-Za-z]?", token.bare):
        return 1
    if _word(token) in _SECONDARY and i + 1 < len(tokens) and re.fullmatch(r"#?\d+[A-Za-z]?\.?", tokens[i + 1].text):
        return 2
    return 0


def _po_box(tokens: Sequence[_Token], i: int) -> int:
    """``P.O. Box 12``, ``PO Box 12``, ``PSC 1234, Box 56``, ``Unit 1096 Box 7899``, ``USNS Guibord``; 0 if none."""
    n = len(tokens)
    word = tokens[i].text.lower().rstrip(".")
    if word in {"p.o", "po", "p.o.box"} and i + 2 < n and _word(tokens[i + 1]) == "box" and _is_number(tokens[i + 2]):
        return 3
    if word in {"psc", "cmr", "unit"} and i + 3 < n and _is_number(tokens[i + 1]) and _word(tokens[i + 2]) == "box":
        return 4 if _is_number(tokens[i + 3]) else 0
    if tokens[i].text in _SHIP_PREFIX and i + 1 < n and _is_name_word(tokens[i + 1]):
        return 2
    if tokens[i].text in _MILITARY_POST and i + 2 < n and _STATE_CODE.fullmatch(tokens[i + 1].text):
        return 3 if re.fullmatch(r"\d{5}", tokens[i + 2].bare) else 2
    return 0


def _body_word(token: _Token, *, inside: bool, lowercase_ok: bool) -> str | None:
    """What ``token`` is inside a street name: ``street`` (type word), ``name``, ``filler`` (particle, or a lower-case
    word such as "rue des six frères Ruellan", "Árpád fejedelem útja"), or ``None`` (the street name has ended)."""
    word = _word(token)
    if word in _STREET_WORDS:
        return "street"
    if _is_name_word(token) or re.fullmatch(r"[A-Z]\.|C/", token.text):
        return "name"
    if inside and (word in _PARTICLES or (lowercase_ok and token.bare.isalpha() and token.bare.islower())):
        return "filler"
    return None


class _AddressParser:
    """Finds street addresses over the whitespace/comma tokens of one text (one instance per text)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.gaps = [""] + [text[a.end : b.start] for a, b in zip(self.tokens, self.tokens[1:], strict=False)]
        """``gaps[k]``: the characters between token ``k-1`` and token ``k``."""

    def line_break_before(self, k: int) -> bool:
        return k < len(self.tokens) and "\n" in self.gaps[k]

    def spans(self) -> list[tuple[int, int]]:
        tokens = self.tokens
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(tokens):
            length = self.anchor(i)
            if not length:
                i += 1
                continue
            end = self.extend(i + length)
            first = self.extend_back(i)
            last = tokens[end - 1]
            stop = last.end
            if _ends_sentence(last) and not (last.text.endswith(")") and "(" in last.text):
                stop -= len(last.text) - len(last.text.rstrip(".?!:;\"'”’)"))
            spans.append((tokens[first].start, stop))
            i = end
        return spans

    def anchor(self, i: int) -> int:
        """Length of the street line starting at token ``i`` (house number + street, PO box...), 0 if none."""
        tokens = self.tokens
        if box := _po_box(tokens, i):
            return box
        if _is_number(tokens[i]):
            numbers = 2 if i + 1 < len(tokens) and _is_number(tokens[i + 1]) else 1
            body = self.street_body(i + numbers, numbered=True)
            return numbers + body if body else 0
        return self.street_body(i, numbered=False)

    def street_body(self, i: int, *, numbered: bool) -> int:
        """Tokens of a street name starting at ``i``, ending with a street-type word or followed by a house number.

        ``numbered`` (a house number came before): name words alone are enough when a line break, a comma or a
        secondary unit follows them (``12 Akti Kanari\\n``). Without a house number the street needs a name word
        and a street-type word (``Elm Street``), a leading street word, a name and a number (``Via Roma 12``), or a
        one-word street name with a street ending and a number (``Vallerstrasse 150``)."""
        tokens, n = self.tokens, len(self.tokens)
        first = tokens[i] if i < n else None
        if first is None:
            return 0
        # "849 't Goylaan 46": a particle may open a numbered street name.
        particle_first = numbered and _word(first) in _PARTICLES and i + 1 < n and _is_name_word(tokens[i + 1])
        if not (_is_name_word(first) or _is_street_word(first) or particle_first):
            return 0
        best = run = names = 0
        prefixed = _word(first) in _STREET_PREFIXES
        for k in range(i, min(i + 7, n)):
            token = tokens[k]
            word = _word(token)
            if k > i and (self.line_break_before(k) or "," in self.gaps[k]):
                break
            kind = _body_word(token, inside=k > i, lowercase_ok=(numbered or prefixed) and names > 0)
            if kind is None:
                break
            names += kind == "name"
            run = length = k - i + 1
            if word in _STREET_SUFFIXES and (names or numbered) and not _ends_sentence(token):
                best = length
            if k + 1 < n and _is_number(tokens[k + 1]) and not self.line_break_before(k + 1):
                if numbered or (names and (prefixed or best)):
                    best = length + 1
                elif length == 1 and _is_capitalised(token.bare) and word.endswith(_STREET_ENDINGS) and len(word) > 5:
                    best = 2
            if _ends_sentence(token):
                break
        # A numbered street whose name runs to a line break, comma or unit: "12 Akti Kanari\n", "5 Avenue du Golf,".
        if numbered and names and run > best and self.ends_line_or_unit(i + run):
            return run
        return best

    def ends_line_or_unit(self, k: int) -> bool:
        """Token ``k`` starts a new line, follows a comma or is a secondary unit."""
        return k < len(self.tokens) and (
            self.line_break_before(k) or "," in self.gaps[k] or bool(_is_secondary(self.tokens, k))
        )

    def extend(self, j: int) -> int:
        """Consume what follows a street line: unit, another street after "and", town, state code, country,
        postcode."""
        tokens, n = self.tokens, len(self.tokens)
        place_words = 0
        while j < n:
            if _ends_sentence(tokens[j - 1]) or self.gaps[j].count("\n") > 2:
                break
            token = tokens[j]
            if unit := _is_secondary(tokens, j) or _po_box(tokens, j):
                j += unit
                place_words = 0
                continue
            if _word(token) == "and" and j + 1 < n and (street := self.anchor(j + 1)):
                j += 1 + street
                continue
            if _STATE_CODE.fullmatch(token.bare) and len(token.bare) == len(token.text.rstrip(".")):
                j += 1
                continue
            if _POSTCODE.fullmatch(token.bare):
                nxt = tokens[j + 1] if j + 1 < n else None
                if token.bare.isdigit():
                    if nxt is not None and not self.line_break_before(j + 1) and nxt.text[:1].isdigit():
                        break  # "085 185 1604": a phone number, not a postcode
                    j += 1
                    continue
                # UK/Canadian postcodes come in two halves: "PH2 5HL", "K1A 0B1".
                if nxt is not None and re.fullmatch(r"\d[A-Z]{2}|\d[A-Z]\d", nxt.bare):
                    j += 2
                    continue
                break
            if _is_name_word(token) or (token.text.startswith("(") and _is_capitalised(token.bare)):
                if place_words >= 4 or token.text.endswith(":"):
                    break
                place_words += 1
                j += 1
                continue
            if _word(token) in _PARTICLES and place_words and j + 1 < n and _is_name_word(tokens[j + 1]):
                j += 1
                continue
            break
        return j

    def extend_back(self, first: int) -> int:
        """Take in a unit written before the street (``Suite 482 070 Kooli 83``) and a crossing (``Main and 5 Elm
        St``, ``the corner of ...``)."""
        tokens = self.tokens
        if first >= 1 and _word(tokens[first - 1]) in _SECONDARY and _is_number(tokens[first]):
            first -= 1  # "Suite 482 070 Kooli 83": the unit's number was read as a house number
        while first >= 2 and _is_secondary(tokens, first - 2) == 2:
            first -= 2
        if first >= 2 and _word(tokens[first - 1]) == "and" and _is_name_word(tokens[first - 2]):
            first -= 2
        if first >= 2 and _word(tokens[first - 2]) == "corner" and _word(tokens[first - 1]) == "of":
            first -= 3 if first >= 3 and _word(tokens[first - 3]) == "the" else 2
        return first


def find_street_addresses(text: str) -> list[tuple[int, int]]:
    """Character spans of the street addresses in ``text`` (see the module docstring)."""
    return _AddressParser(text).spans()


# --------------------------------------------------------------------------------------------------------------
# Names and places around spaCy


@cache
def _countries() -> frozenset[str]:
    from phonenumbers.geodata.locale import LOCALE_DATA

    names = {entry["aa"] for entry in LOCALE_DATA.values() if not entry.get("aa", "*").startswith("*")}
    names |= {"USA", "U.S.A.", "UK", "U.K.", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland"}
    names |= {"Czechia", "Holland", "Ivory Coast", "Burma", "Republic of Korea", "Korea"}
    names |= _US_STATES
    return frozenset(names)


_US_STATES = _words(
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


_NAME_WORD = r"[^\W\d_][\w'’-]*"
_CAP_NAME = r"(?:[^\W\d_a-z](?:[\w’-]|'(?!s\b))*)"
"""A capitalised name word (``O'Neill``, ``Jean-Luc``, ``Ólafsdóttir``), not taking a possessive ``'s``."""
_PERSON_NAME = rf"{_CAP_NAME}(?:\s+(?:[A-Z]\.?\s+)?{_CAP_NAME}){{0,2}}"
"""One to three capitalised words, with an optional middle initial."""
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Rev|Fr|Capt|Col|Sgt|Lt|Hon)"

_DETERMINERS = _words("a an the my your his her our their this that these those")
_HONORIFIC_WORD = re.compile(rf"(?i:{_HONORIFIC})\.?")
_NAME_SUFFIX = r"(?:\s+(?:Jr|Sr|II|III|IV|MD|DDS|DVM|PhD|Esq)\.?)?"
_NAME_THEN_SUFFIX = _PERSON_NAME + _NAME_SUFFIX
_PERSONAL_THINGS = (
    r"(?:address|home|house|flat|apartment|phone|number|mobile|email|e-mail|account|card|birthday|wife|husband|"
    r"partner|son|daughter|mother|father|brother|sister|family|car|office|name|passport|parents)"
)

_PERSON_CUES = [
    re.compile(rf"\b(?i:{_HONORIFIC})\.?\s+(?P<name>{_NAME_THEN_SUFFIX})"),
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
        r"return(?:ed|ing)?|headed|heading|drove|driving|trip|vacation|holiday|I'm|I\s+am|we're|we\s+are)"
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

_ORG_WORDS = _words(
    """inc inc. ltd ltd. llc plc corp corp. corporation company co co. group holdings holding fund trust bank
    limited partners capital systems technologies technology energy ag sa nv gmbh etf bancorp reit university
    institute association foundation ministry department agency hotel hotels airlines international"""
)
_LABEL_WORDS = _words(
    """phone mobile desk fax email e-mail website address suite apt apartment street road avenue office tel name
    date when where what who why how time subject note answer question re fw to from cc bcc info personal
    billing shipping zip postcode total amount"""
)


def _strip_to_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim an NER 'person' to the name: first line only, from its first capitalised word through its last,
    without trailing label/unit words ("Felix Biermann\\nPhone" -> Felix Biermann). None if nothing is left or it is
    a company."""
    segment = text[start:end]
    cut = segment.find("\n")
    if cut >= 0:
        segment = segment[:cut]
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", segment)]
    while words and (not _is_capitalised(words[0][2]) or _HONORIFIC_WORD.fullmatch(words[0][2])):
        words.pop(0)
    if words and words[0][2].lower() in _DETERMINERS:
        return None  # "A REAL PERSON", "The Big Three": a name does not start with an article
    kept: list[tuple[int, int, str]] = []
    for word in words:
        bare = word[2].strip("\"'“”()").rstrip(".,;:!?")
        if (
            not bare
            or not (_is_capitalised(bare) or (bare.lower() in _PARTICLES and kept))
            or bare.lower() in _LABEL_WORDS
        ):
            break
        kept.append(word)
        if word[2].rstrip("\"'”)").endswith((",", ";", ":", "!", "?")):
            break
    while kept and kept[-1][2].strip(".,").lower() in _PARTICLES:
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


def _overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and span[1] > start for start, end in spans)


def _result(
    entity: str, start: int, end: int, score: float, recognizer: EntityRecognizer, rule: str
) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
            "rule": rule,
        },
    )


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
                others.append(_result(label, ent.start_char, ent.end_char, float(score), self, "spacy"))
        places += self._cued_places(text)
        people = [p for p in people if not self._is_place(text, p, places)]
        people += self._cued_people(text)
        people += self._list_mates(text, people)
        people += self._repeats(text, people)

        # One label per stretch of text: addresses first, then the strongest evidence (longer spans on ties).
        candidates = [("LOCATION", *p) for p in places] + [("PERSON", *p) for p in people]
        results = others
        taken: list[tuple[int, int]] = list(addresses)
        for label, start, end, score, rule in sorted(candidates, key=lambda c: (-c[3], c[1] - c[2])):
            if label in entities and not _overlaps((start, end), taken):
                results.append(_result(label, start, end, score, self, rule))
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
                if 1 <= len(words) <= 3 and all(_is_capitalised(w) for w in words) and above.strip() not in countries:
                    offset = above_start + len(above) - len(above.lstrip())
                    found.append((offset, offset + len(above.strip()), CUE_PLACE_SCORE, "town_line"))
        for pattern in _PLACE_CUES:
            for match in pattern.finditer(text):
                words = match.group("place").split()
                while words and words[-1].lower() in _NOT_PLACES:
                    words.pop()
                if words and words[0].lower() not in _NOT_PLACES:
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
                if trimmed is not None and name not in _NOT_PLACES and name not in _LABEL_WORDS:
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
            forms |= {w for w in name.split() if len(w) > 2 and _is_capitalised(w) and not w.endswith(".")}
        for form in sorted(forms, key=len, reverse=True):
            for match in re.finditer(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text):
                found.append((match.start(), match.end(), REPEAT_SCORE, "repeat"))
        return found


class StreetAddressRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Street addresses (house number or PO box through postcode), reported as LOCATION."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["LOCATION"], supported_language=supported_language, name="StreetAddressRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "LOCATION" not in entities:
            return []
        return [
            _result("LOCATION", s, e, ADDRESS_SCORE, self, "street_address") for s, e in find_street_addresses(text)
        ]


# --------------------------------------------------------------------------------------------------------------
# Phone numbers

_PHONE_CANDIDATE = re.compile(
    r"(?<![\w@/+.-])"
    r"(?:(?:\+|00)\d{1,3}[ .-]?)?"
    r"(?:\(\d{1,5}\)[ .-]?|\(0\)\s?)?"
    r"\d{1,5}(?:[ .-]?\(?\d{1,5}\)?){1,5}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    r"(?![\w@]|[.-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|telephone|tel|mobile|cell|cellphone|call|calling|ring|text|sms|whatsapp|fax|desk|office|home|work|"
    r"contact|reach|dial|hotline|line|number|ext|extension|messages?|answering|landline)\b",
    re.IGNORECASE,
)
_NOT_PHONE = [
    re.compile(r"\d{4}-\d{2}-\d{2}.*"),  # ISO date
    re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"),  # other dates
    re.compile(r"\d{1,3}(?:\.\d{1,3}){3}"),  # IPv4
    re.compile(r"\d{3}-\d{2}-\d{4}"),  # US SSN shape
]
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "BR", "IL", "CH", "AU", "IT", "ES", "NL", "SE", "JP", "CN", "KR")


def _phone_digits(candidate: str) -> str:
    return re.sub(r"\D", "", re.split(r"\s?(?:x|ext\.?)\s?\d", candidate, maxsplit=1)[0])


class LenientPhoneRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Phone numbers in any written form (replaces presidio's, which validates for eight regions only).

    A digit-group candidate (6-15 digits) is reported with a phone word within a few words before it or right
    after it ("call me on", "Mobile:", "... fax"), in international form (``+41 ...``) when phonenumbers finds it
    possible, or when it is a valid number of a common region. Dates, IPv4 addresses and SSN shapes are not phones.
    """

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["PHONE_NUMBER"], supported_language=supported_language, name="PhoneRecognizer"
        )

    def load(self) -> None:
        """Rules and phonenumbers' metadata only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "PHONE_NUMBER" not in entities:
            return []
        results = []
        for match in _PHONE_CANDIDATE.finditer(text):
            candidate = match.group().rstrip(" .-(")
            start, end = match.start(), match.start() + len(candidate)
            if candidate.startswith("(") and ")" not in candidate:
                start, candidate = start + 1, candidate[1:]
            digits = _phone_digits(candidate)
            if not 6 <= len(digits) <= 15 or any(p.fullmatch(candidate) for p in _NOT_PHONE):
                continue
            score = self._score(text, start, end, candidate, digits)
            if score:
                results.append(_result("PHONE_NUMBER", start, end, score, self, "phone"))
        return results

    @staticmethod
    def _score(text: str, start: int, end: int, candidate: str, digits: str) -> float:
        before = text[max(0, start - 40) : start]
        after = text[end : end + 12]
        context = bool(_PHONE_CONTEXT.search(" ".join(before.split()[-5:]))) or bool(
            _PHONE_CONTEXT.match(after.lstrip(" -:\\,"))
        )
        separated = bool(re.search(r"[ .()-]", candidate))
        if context and (len(digits) >= 7 or separated):
            return 0.75
        if _valid_phone(candidate):
            return 0.6
        return 0.0


def _valid_phone(candidate: str) -> bool:
    import phonenumbers

    if candidate.startswith(("+", "00")):
        try:
            number = phonenumbers.parse("+" + candidate.lstrip("+0") if candidate.startswith("00") else candidate)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(number))
    for region in _PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and len(_phone_digits(candidate)) >= 9:
            return True
    return False


# --------------------------------------------------------------------------------------------------------------
# Credit cards

_CARD_CANDIDATE = re.compile(
    r"(?<![\d+.-])(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})(?![\d-]|\.\d)"
)
_CARD_CONTEXT = re.compile(
    r"\b(?:card|credit|debit|cc|visa|mastercard|amex|discover|jcb|maestro|diners|payment)\b", re.I
)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _issuer_range(digits: str) -> bool:
    """A number in an issuer's range (IIN) with a length that issuer uses."""
    length, two, four, six = len(digits), int(digits[:2]), int(digits[:4]), int(digits[:6])
    return bool(
        (digits[0] == "4" and length in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and length == 16)  # Mastercard
        or (two in (34, 37) and length == 15)  # American Express
        or (
            (four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925)
            and 16 <= length <= 19
        )
        or (3528 <= four <= 3589 and 16 <= length <= 19)  # JCB
        or (four in (2131, 1800) and length == 15)  # JCB (old ranges)
        or ((300 <= int(digits[:3]) <= 305 or two in (36, 38, 39) or four == 3095) and 14 <= length <= 19)  # Diners
        or ((two == 50 or 56 <= two <= 69) and 12 <= length <= 19)  # Maestro, UnionPay (62), RuPay (60)
        or (2200 <= four <= 2204 and 16 <= length <= 19)  # Mir
    )


class CardNumberRecognizer(LocalRecognizer):  # type: ignore[misc]
    """Card numbers of every issuer range, 12-19 digits, plain or grouped, Luhn-valid (replaces presidio's)."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["CREDIT_CARD"], supported_language=supported_language, name="CreditCardRecognizer"
        )

    def load(self) -> None:
        """Rules only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "CREDIT_CARD" not in entities:
            return []
        results = []
        for match in _CARD_CANDIDATE.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if not _luhn(digits):
                continue
            if _issuer_range(digits):
                score = 1.0
            elif _CARD_CONTEXT.search(text[max(0, match.start() - 40) : match.start()]):
                score = 0.6  # Luhn-valid, unknown range, but the text calls it a card
            else:
                continue
            results.append(_result("CREDIT_CARD", match.start(), match.end(), score, self, "credit_card"))
        return results
