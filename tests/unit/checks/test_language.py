# ruff: noqa: RUF001  # Japanese and Chinese texts are written with fullwidth punctuation
"""Language detection (script) for PII routing and identification (py3langid) for toxicity routing."""

from __future__ import annotations

import pytest

from guard.checks.language import IDENTIFIED_LANGUAGES, detect_language, identify_language

pytestmark = pytest.mark.unit

# Sentences written here, one per language, long enough for character n-grams.
SENTENCES = {
    "fr": "Le train pour Lyon part à huit heures, mais il faut composter son billet avant de monter.",
    "es": "El tren a Sevilla sale a las ocho, pero hay que validar el billete antes de subir al andén.",
    "it": "Il treno per Milano parte alle otto, ma bisogna convalidare il biglietto prima di salire.",
    "pt": "O comboio para o Porto parte às oito, mas é preciso validar o bilhete antes de embarcar.",
    "tr": "Ankara treni saat sekizde kalkıyor, ama binmeden önce biletinizi onaylatmanız gerekiyor.",
    "ru": "Поезд в Казань отправляется в восемь, но билет нужно прокомпостировать до посадки.",
    "de": "Der Zug nach Hamburg fährt um acht Uhr ab, aber die Fahrkarte muss vorher entwertet werden.",
    "ja": "名古屋行きの電車は八時に出発しますが、乗る前に切符を改札に通してください。",
    "ko": "부산행 기차는 여덟 시에 출발하지만 타기 전에 표를 확인해야 합니다.",
    "zh": "去杭州的火车八点出发，但是上车之前需要先检票。",
    "en": "The train to Leeds leaves at eight, but you have to validate your ticket before boarding.",
}


@pytest.mark.parametrize(("language", "text"), SENTENCES.items())
def test_identify_language_names_the_language(language: str, text: str) -> None:
    assert identify_language(text) == language
    assert language in IDENTIFIED_LANGUAGES


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "Thanks!",
        "Gracias",
        "Berlin",
        "lol",
        "Idiot, Dumbass, Moron",
        "",
        "42 + 17",
        "@helpdesk_team #urgent thanks https://example.com/faq/reset",  # handles, tags and links are not words
        "FUK U DUM LOSER",  # shouted, misspelt English: no other language is likely either
        "lolz ur so dum haha",
    ],
)
def test_short_or_uncertain_text_stays_english(text: str) -> None:
    assert identify_language(text) == "en"


def test_a_handle_does_not_hide_the_language() -> None:
    assert identify_language("@marco sei un cretino totale, davvero.") == "it"


def test_pii_routing_keeps_to_the_seed_languages() -> None:
    """detect_language (PII recognizers, prohibited-use layers) answers only what those layers know."""
    assert [detect_language(SENTENCES[lang]) for lang in ("fr", "ru", "ja", "ko", "zh")] == [
        "en",
        "en",
        "ja",
        "ko",
        "zh",
    ]


def test_the_beginning_of_a_long_text_decides() -> None:
    """Only the first 2,000 characters are read (detoxify reads a text's beginning too), so a long answer's
    language is the one its beginning is written in and its cost is bounded."""
    french, english = SENTENCES["fr"], SENTENCES["en"]
    assert identify_language(" ".join([french] * 30) + " " + " ".join([english] * 300)) == "fr"
    assert identify_language(" ".join([english] * 30) + " " + " ".join([SENTENCES["ja"]] * 300)) == "en"
