# ruff: noqa: RUF001  # curly apostrophes and quotes are part of the text these recognizers read
"""Street addresses as one span: from the house number or PO box through the secondary unit, town, state code,
country and postcode, on one line or several.

The parser reads whitespace/comma tokens. A street line is a house number and a street name (``12 Elm Street``,
``Via Roma 12``, ``Vallerstrasse 150``, ``12 Akti Kanari`` before a line break, ``4/27 Wattle Parade``), a PO box, or
a flat or unit line above a street or a named building (``Flat 12\nRose Court``); what follows it (units, a building's
street line, towns, state codes, postcodes — UK, Canadian and Irish ones in two halves — countries) extends the span,
and a unit or crossing written before it extends it backwards. The street-type and secondary-unit words are general
English/European address conventions (the US Postal Service's Publication 28, Royal Mail's and Australia Post's street
types); numbers that count things ("Chapter 3", "1.") are no house numbers.
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
_NUMBERED_SUFFIXES = word_set(
    """rise vale view views hill hills heights meadow meadows mead green greens park parks ridge ridges circuit
    promenade parade wynd brae chase croft field fields hollow glen glens dale dell bank brow approach crest point
    points landing pass spur cove creek valley glade retreat outlook link grange fold garth lea leys manor mount
    orchard track crossing estate hts gdns pde cct crt esp prom rdg wk wy bypass circus garden gateway harbor
    harbour haven island isle junction knoll lake lakes lodge mill mills motorway oval pines shore shores springs
    summit trace vista villas yard"""
)
"""More thoroughfare types, from the US Postal Service's Publication 28 (appendix C1), Royal Mail's addresses and
Australia Post's street types (AS 4590). Most are ordinary nouns as well ("Key Points", "Access Point", "Data
Bank"), so they make a street only after a house number ("27 Hawthorn Rise", "4/12 Wattle Parade")."""
_STREET_PREFIXES = word_set(
    """rue rua r via viale vicolo piazza piazzale corso largo avenida avda avenue av calle c/ carrera camino ctra
    carretera paseo plaza praça travessa estrada rodovia alameda chemin quai allée boulevard bd ul ulica aleja
    οδός οδος πλατεία λεωφόρος"""
)
_STREET_WORDS = _STREET_SUFFIXES | _STREET_PREFIXES
_ALL_TYPES = _STREET_WORDS | _NUMBERED_SUFFIXES
# Street-type endings of one-word street names: "Vallerstrasse", "Roodborstweg", "Hermiankatu", "Marsveien".
_STREET_ENDINGS = tuple(
    word_set(
        """strasse straße gasse weg vej veien vegen gata gatan vägen gade stræde vænget katu kuja tie laan straat
        dreef plein gracht kade allee alléen platz ulica utca útja"""
    )
)
_COUNTERS = word_set(
    """chapter section step part page top version figure fig table phase lesson week day episode volume vol issue
    grade class stage round exercise question slide task tip item rule article act scene book season module
    level gate platform room track no number"""
)
"""Nouns that number things ("Chapter 3", "Gate 12"): a number after one is no house number."""
_BUILDINGS = word_set(
    "house mansions lodge tower towers building buildings apartments hall flats cottages cottage chambers court"
)
"""Words that end a building's name on the line after a flat or unit ("Flat 12\nMorris Mansions")."""
_PLACE_PARTICLES = word_set("am an im upon sur sous ob bei")
"""Small words inside town names ("Frankfurt am Main", "Newcastle upon Tyne", "Saint-Amand sur Fion")."""
_SECONDARY = word_set("apt apartment suite ste unit flat floor fl room rm bldg building lot studio maisonette")
_ABBREVIATIONS = word_set(
    """st str rd ave av avda ln dr ct pl blvd bd ter tce cres sq pkwy hwy cir trl ctra ul r c apt ste fl rm bldg
    p.o po no nr mt ft n s e w co pde cct crt gdns hts esp prom rdg"""
)

_HOUSE_NUMBER = re.compile(r"\d{1,6}[A-Za-z]?\.?|\d{1,5}[A-Za-z]?/\d{1,5}[A-Za-z]?")
"""A house number: ``12``, ``12A``, or Australia's unit/house ``4/27``."""
_LIST_MARKER = re.compile(r"\d{1,3}[.)]")
"""``1.`` or ``2)``: an item of a numbered list, not a house number."""
_POSTCODE = re.compile(r"\d{3,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?")
_INWARD_CODE = re.compile(r"\d[A-Z]{2}|\d[A-Z]\d")
"""The second half of a two-part postcode: UK ``5HL``, Canadian ``0B1``."""
_EIRCODE = re.compile(r"[A-Z]\d{2}|D6W")
_EIRCODE_UNIQUE = re.compile(r"[0-9AC-FHKNPRTV-Y]{4}")
"""An Irish Eircode: a routing key (``D02``) and four characters of its own alphabet (``X285``)."""
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
    """A capitalised word of an alphabet with case: these are Western address conventions (Japanese and Korean
    addresses have their own grammar; a Chinese phrase after a number is no street)."""
    bare = token.bare
    word = bare.lower().rstrip(".")
    return (
        is_capitalised(bare)
        and bare[:1].lower() != bare[:1].upper()
        and word not in NOT_PLACES
        and word not in _SECONDARY
    )


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
        if _is_number(tokens[i]) and not _LIST_MARKER.fullmatch(tokens[i].text):
            numbers = 2 if i + 1 < len(tokens) and _is_number(tokens[i + 1]) else 1
            if self.line_break_before(i + numbers):
                return 0  # a house number and its street share a line ("Step 3\nOpen Settings" is no address)
            # "4/27" (unit/house) is also a fraction or a date ("9/11 Truth"): it needs a street type.
            typed = "/" in tokens[i].text
            body = self.street_body(i + numbers, numbered=True, typed=typed, counted=self.counted(i))
            return numbers + body if body else 0
        if (unit := _is_secondary(tokens, i)) and self.ends_line_or_unit(i + unit):
            # A flat or unit on its own line or before a comma, then the street or a named building without a
            # house number: "Flat 12\nHawthorn Rise", "Unit 4, Wattle Court". The next line needs a street type.
            body = self.street_body(i + unit, numbered=True, typed=True)
            return unit + body if body else 0
        return self.street_body(i, numbered=False)

    def typed(self, i: int, length: int) -> bool:
        """Tokens ``i`` to ``i + length`` hold a street-type word."""
        return any(_word(token) in _ALL_TYPES for token in self.tokens[i : i + length])

    def counted(self, i: int) -> bool:
        """The number at token ``i`` counts or labels something ("Chapter 3", "Windows 11", "see step 4"): it
        follows a counting noun or a capitalised word on the same line, with no comma or colon between."""
        if i == 0 or self.line_break_before(i) or "," in self.gaps[i]:
            return False
        previous = self.tokens[i - 1]
        if previous.text.endswith((":", ";", ".", ")")) or _word(previous) in _SECONDARY:
            return False
        opens_sentence = i == 1 or self.line_break_before(i - 1) or _ends_sentence(self.tokens[i - 2])
        return _word(previous) in _COUNTERS or (is_capitalised(previous.bare) and not opens_sentence)

    def street_body(self, i: int, *, numbered: bool, typed: bool = False, counted: bool = False) -> int:
        """Tokens of a street name starting at ``i``, ending with a street-type word or followed by a house number.

        ``numbered`` (a house number came before): name words alone are enough when a line break, a comma or a
        secondary unit follows them (``12 Akti Kanari\\n``). Without a house number the street needs a name word
        and a street-type word (``Elm Street``), a leading street word, a name and a number (``Via Roma 12``), or a
        one-word street name with a street ending and a number (``Vallerstrasse 150``). The thoroughfare types that
        are also ordinary nouns (:data:`_NUMBERED_SUFFIXES`) count only with ``numbered``; ``typed``: the name must
        end with a type word whatever follows it; ``counted`` (:meth:`counted`): the number before was not a house
        number for those nouns ("Chapter 3 Key Points")."""
        tokens, n = self.tokens, len(self.tokens)
        first = tokens[i] if i < n else None
        if first is None:
            return 0
        # "849 't Goylaan 46": a particle may open a numbered street name.
        particle_first = numbered and _word(first) in PARTICLES and i + 1 < n and _is_name_word(tokens[i + 1])
        if not (_is_name_word(first) or _is_street_word(first) or particle_first):
            return 0
        best = run = names = names_at_best = 0
        follows_name = False
        last_kind: str | None = None
        prefixed = _word(first) in _STREET_PREFIXES
        for k in range(i, min(i + 7, n)):
            token = tokens[k]
            word = _word(token)
            if k > i and (self.line_break_before(k) or "," in self.gaps[k]):
                break
            kind = _body_word(token, inside=k > i, lowercase_ok=(numbered or prefixed) and names > 0)
            if kind is None:
                break
            last_kind = kind
            names_before = names
            names += kind == "name"
            run = length = k - i + 1
            # A type word ends the street; one ending a sentence does too after a house number ("at 12 Elm Street."),
            # ... but small words after a type word do not lead to another ("11 Elm Lane and then drove to St Ives").
            if (follows_name or not best) and (
                (word in _STREET_SUFFIXES and (names or numbered) and (numbered or not _ends_sentence(token)))
                or (word in _NUMBERED_SUFFIXES and numbered and names_before and not counted and follows_name)
                or (typed and word in _BUILDINGS and names_before)
            ):
                best, names_at_best = length, names
            follows_name = kind == "name"
            if k + 1 < n and _is_number(tokens[k + 1]) and not self.line_break_before(k + 1):
                if (numbered and kind != "filler") or (names and (prefixed or best)):
                    best = length + 1  # "849 't Goylaan 46"; not "12 Park benches and 4 ..."
                elif length == 1 and is_capitalised(token.bare) and word.endswith(_STREET_ENDINGS) and len(word) > 5:
                    best = 2
            if _ends_sentence(token):
                break
        # A numbered street whose name runs to a line break, comma or unit: "12 Akti Kanari\n", "5 Avenue du Golf,";
        # not small words after a type word ("4 Elm Rise last spring,").
        if (
            numbered
            and not typed
            and names > names_at_best
            and run > best
            and last_kind != "filler"  # ends with a name or type word, not "5 Seesterne weniger,"
            and self.ends_line_or_unit(i + run)
        ):
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
        postcode = False
        while j < n:
            if _ends_sentence(tokens[j - 1]) or self.gaps[j].count("\n") > 2:
                break
            if postcode and self.line_break_before(j) and not _STATE_CODE.fullmatch(tokens[j].bare):
                break  # the postcode's line ends the address ("USA" on the next line still belongs)
            token = tokens[j]
            if unit := _is_secondary(tokens, j) or _po_box(tokens, j):
                j += unit
                place_words = 0
                continue
            if _word(token) == "and" and j + 1 < n and (street := self.anchor(j + 1)):
                j += 1 + street
                continue
            if _is_number(token) and (street := self.anchor(j)) and self.typed(j, street):
                j += street  # a building's line, then its street's: "Flat 3\nRose Court\n12 Elm Street"
                place_words = 0
                continue
            if _STATE_CODE.fullmatch(token.bare) and len(token.bare) == len(token.text.rstrip(".")):
                j += 1
                continue
            if _POSTCODE.fullmatch(token.bare):
                if not (length := self.postcode(j)):
                    break
                j += length
                postcode = True
                continue
            if _is_name_word(token) or (token.text.startswith("(") and is_capitalised(token.bare)):
                if place_words >= 4 or token.text.endswith(":"):
                    break
                place_words += 1
                postcode = False  # "00100 Roma\nItaly": a town after the postcode, then the country
                j += 1
                continue
            # A particle inside a town's name ("Frankfurt am Main"), a street type written small ("Sullivan ridge").
            particle = _word(token) in PARTICLES | _PLACE_PARTICLES and j + 1 < n and _is_name_word(tokens[j + 1])
            small_type = not postcode and token.text == token.bare and _word(token) in _ALL_TYPES
            if place_words and (particle or small_type):
                j += 1
                continue
            break
        return j

    def postcode(self, j: int) -> int:
        """Tokens the postcode at token ``j`` takes: 1 for digits, 2 for the two halves of a UK, Irish or Canadian
        postcode ("PH2 5HL", "D02 X285", "K1A 0B1"); 0 where the digits run on into a phone number ("085 185 1604")
        or a first half has no second."""
        token, n = self.tokens[j], len(self.tokens)
        nxt = self.tokens[j + 1] if j + 1 < n and not self.line_break_before(j + 1) else None
        if token.bare.isdigit():
            return 0 if nxt is not None and nxt.text[:1].isdigit() else 1
        if nxt is not None and (
            _INWARD_CODE.fullmatch(nxt.bare) or (_EIRCODE.fullmatch(token.bare) and _EIRCODE_UNIQUE.fullmatch(nxt.bare))
        ):
            return 2
        return 0

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
