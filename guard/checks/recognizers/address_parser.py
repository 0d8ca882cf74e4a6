# ruff: noqa: RUF001  # curly apostrophes and quotes are part of the text these recognizers read
"""Street addresses as one span: from the house number or PO box through the secondary unit, town, state code,
country and postcode, on one line or several.

The parser reads whitespace/comma tokens. A street line is a house number and a street name (``12 Elm Street``,
``Via Roma 12``, ``Vallerstrasse 150``, ``12 Akti Kanari`` before a line break) or a PO box; what follows it (units,
towns, state codes, postcodes, countries) extends the span, and a unit or crossing written before it extends it
backwards. The street-type and secondary-unit words are general English/European address conventions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from guard.checks.recognizers._text import NOT_PLACES, PARTICLES, is_capitalised, word_set

__all__ = ["find_street_addresses"]


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


def _ends_sentence(token: _Token) -> bool:
    """``France.`` or ``States?`` end an address; ``St.``, ``Apt.`` and initials do not."""
    text = token.text.rstrip("\"'”’)")
    if text.endswith(("?", "!", ":")):
        return True
    if not text.endswith("."):
        return False
    word = text[:-1].lower()
    return not (len(word) <= 1 or word in _ABBREVIATIONS or "." in word)


# Street-type words written after the name ("Main Street", "Grazer Strasse", "Ingvald Scheys gate") and before it
# ("Rue de Rivoli", "Via Roma", "ul. Asnyka"); some go either way.
_STREET_SUFFIXES = word_set(
    """street st str road rd avenue ave av lane ln drive dr way court ct place pl boulevard blvd terrace ter tce
    crescent cres close square sq parkway pkwy highway hwy alley row circle cir trail trl path walk plaza loop
    pike expressway freeway turnpike causeway mews grove gardens quay wharf embankment esplanade broadway village
    strasse straße gasse weg allee platz ring gate gata gatan vei veien vegen vej vägen gade laan straat dreef
    plein kade tee tie katu kuja ulica utca út útja"""
)
_STREET_PREFIXES = word_set(
    """rue rua r via viale vicolo piazza piazzale corso largo avenida avda avenue av calle c/ carrera camino ctra
    carretera paseo plaza praça travessa estrada rodovia alameda chemin quai allée boulevard bd ul ulica aleja
    οδός οδος πλατεία λεωφόρος"""
)
_STREET_WORDS = _STREET_SUFFIXES | _STREET_PREFIXES
# Street-type endings of one-word street names: "Vallerstrasse", "Roodborstweg", "Hermiankatu", "Marsveien".
_STREET_ENDINGS = tuple(
    word_set(
        """strasse straße gasse weg vej veien vegen gata gatan vägen gade stræde vænget katu kuja tie laan straat
        dreef plein gracht kade allee alléen platz ulica utca útja"""
    )
)
_SECONDARY = word_set("apt apartment suite ste unit flat floor fl room rm bldg building lot")
_ABBREVIATIONS = word_set(
    """st str rd ave av avda ln dr ct pl blvd bd ter tce cres sq pkwy hwy cir trl ctra ul r c apt ste fl rm bldg
    p.o po no nr mt ft n s e w"""
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
    return is_capitalised(bare) and word not in NOT_PLACES and word not in _SECONDARY


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
    if inside and (word in PARTICLES or (lowercase_ok and token.bare.isalpha() and token.bare.islower())):
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
        particle_first = numbered and _word(first) in PARTICLES and i + 1 < n and _is_name_word(tokens[i + 1])
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
                elif length == 1 and is_capitalised(token.bare) and word.endswith(_STREET_ENDINGS) and len(word) > 5:
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
            if _is_name_word(token) or (token.text.startswith("(") and is_capitalised(token.bare)):
                if place_words >= 4 or token.text.endswith(":"):
                    break
                place_words += 1
                j += 1
                continue
            if _word(token) in PARTICLES and place_words and j + 1 < n and _is_name_word(tokens[j + 1]):
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
