# ruff: noqa: RUF001, RUF003  # fullwidth, look-alike and CJK characters are what these tests are about
from __future__ import annotations

import pytest

from guard.checks.normalize import normalize

pytestmark = pytest.mark.unit


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("maria\u200b@example.com", "maria@example.com"),  # zero-width space
        ("ma\u00adria\u2060@exa\ufeffmple.com", "maria@example.com"),  # soft hyphen, word joiner, BOM
        ("maria\U000e0041\U000e0042@example.com", "maria@example.com"),  # Unicode tag characters
        ("maria＠example.com", "maria@example.com"),  # fullwidth @
        (_fullwidth("536-22-1234"), "536-22-1234"),  # fullwidth digits and hyphen
        ("536\u2012\u200922\u20131234", "536-22-1234"),  # figure dash, thin space, en dash
        ("M\u0430ria Garcia", "Maria Garcia"),  # Cyrillic а inside a Latin word
        ("\u041c\u0430\u0440\u0441", "Mapc"),  # a word made only of look-alikes reads as Latin
        ("𝐌𝐚𝐫𝐢𝐚", "Maria"),  # mathematical bold letters
        ("4111.1111.1111.1111", "4111-1111-1111-1111"),  # dots become dashes
        ("4111 1111  1111 1111", "4111-1111-1111-1111"),  # mixed single and double spaces
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4111111111111111"),  # spaced digits
        ("5 3 6 2 2 1 2 3 4", "536221234"),
        ("090ー1234ー5678", "090-1234-5678"),  # katakana prolonged-sound mark as a dash
        ("+81  90  1234  5678", "+81-90-1234-5678"),
        ("536.22.1234", "536-22-1234"),
        ("メールはtaro@example.comです", "メールは taro@example.com です"),  # script boundaries get a space
    ],
)
def test_evasions_are_undone(original: str, expected: str) -> None:
    assert normalize(original).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "Pi is 3.14159265358979 and e is 2.718281828.",  # decimals
        "Server 192.168.100.200 and 10.0.0.1 answered.",  # IP addresses
        "Meet on 2024.01.15 or 15.01.2024 at 2024-01-15 10:30:45.",  # dates and times
        "SSN 536-22-1234, card 4111 1111 1111 1111, call +1 212 555 0142 or 1 800 555 0142.",  # conventional
        "Scores: 10 20 30 40 50.",
        "Version 1.2.3 of the build.",
        "IBAN DE89 3704 0044 0532 0130 00",
    ],
)
def test_ordinary_ascii_text_is_left_alone(text: str) -> None:
    normalized = normalize(text)
    assert normalized.text == text
    assert not normalized.changed
    assert normalized.to_original(3, 7) == (3, 7)


def test_genuine_cyrillic_and_cjk_words_keep_their_letters() -> None:
    text = "Мария Иванова живёт в Москве; 田中さんは東京に住んでいます。"
    assert normalize(text).text == text


def test_every_normalised_span_maps_back_to_the_exact_original_span() -> None:
    original = f"Mail m\u0430ria\u200b＠example.com, card {_fullwidth('4111')}.1111.1111.1111 or M\u0430ria Garcia."
    normalized = normalize(original)
    assert normalized.text == "Mail maria@example.com, card 4111-1111-1111-1111 or Maria Garcia."
    for value, evasive in [
        ("maria@example.com", "m\u0430ria\u200b＠example.com"),
        ("4111-1111-1111-1111", f"{_fullwidth('4111')}.1111.1111.1111"),
        ("Maria Garcia", "M\u0430ria Garcia"),
    ]:
        start = normalized.text.index(value)
        mapped_start, mapped_end = normalized.to_original(start, start + len(value))
        assert original[mapped_start:mapped_end] == evasive


def test_inserted_spaces_map_to_no_original_characters() -> None:
    original = "電話は090-1234-5678です"
    normalized = normalize(original)
    start = normalized.text.index("090")
    assert normalized.to_original(start, start + len("090-1234-5678")) == (3, 16)
    # A span that includes an inserted space still covers only real characters.
    assert normalized.to_original(start - 1, start + 3) == (3, 6)
    assert original[3:16] == "090-1234-5678"


def test_stripped_characters_at_span_edges_are_not_included() -> None:
    original = "\u200bmaria@example.com\u200b!"
    normalized = normalize(original)
    assert normalized.text == "maria@example.com!"
    assert normalized.to_original(0, 17) == (1, 18)
