"""Recognizers that make presidio good at what its defaults miss: names, places, addresses, loose numbers.

One recognizer per module, as presidio lays out its own:

* :class:`NerRecognizer` (``ner_recognizer``, registered as ``SpacyRecognizer``): spaCy's people and places, cleaned
  and completed with cue phrases.
* :class:`StreetAddressRecognizer` (``street_address_recognizer``, over ``address_parser``): street addresses as one
  span, from the house number or PO box through the unit, town, state code, country and postcode.
* :class:`LenientPhoneRecognizer` (``phone_recognizer``, registered as ``PhoneRecognizer``): numbers in any national
  format, reported when a phone word is near or the number is valid.
* :class:`CardNumberRecognizer` (``card_number_recognizer``, registered as ``CreditCardRecognizer``): every issuer
  range and length 12-19, Luhn-validated.
* :class:`ContextIdRecognizer` (``context_id_recognizer``): identifiers typed by their label (passport, driver
  licence, bank account, NHS, SSN, ITIN), obfuscated e-mail addresses, phone numbers spelled in words.
* :class:`JapaneseAddressRecognizer` (``ja_address_recognizer``): Japanese addresses, prefecture through block.
* :class:`KoreanAddressRecognizer` (``ko_address_recognizer``): Korean addresses, province through building number.
* :class:`FormFieldRecognizer` (``form_field_recognizer``): people and places named by a form's field labels.
* :class:`ToponymRecognizer` (``toponym_recognizer``): towns by their shape ("Port Justin", "Charlesmouth").
* :class:`GroupedIbanRecognizer` (``iban_recognizer``, registered as ``IbanRecognizer``): IBANs, grouped or not, cut
  at their checksum-valid length.

``PiiCheck.load`` registers :func:`extra_recognizers` and first removes any default recognizer with the same
``name``, so the four registered under presidio's names replace presidio's. (Their classes have other names:
presidio's registry loader finds recognizer classes by class name among all subclasses, and a second
``PhoneRecognizer`` class would shadow its own.) The pattern recognizers declared in YAML live in
:mod:`guard.checks.pii_patterns`.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer

from guard.checks.recognizers.address_parser import find_street_addresses
from guard.checks.recognizers.card_number_recognizer import CardNumberRecognizer
from guard.checks.recognizers.context_id_recognizer import ContextIdRecognizer
from guard.checks.recognizers.form_field_recognizer import FormFieldRecognizer
from guard.checks.recognizers.iban_recognizer import GroupedIbanRecognizer
from guard.checks.recognizers.ja_address_recognizer import JapaneseAddressRecognizer
from guard.checks.recognizers.ko_address_recognizer import KoreanAddressRecognizer
from guard.checks.recognizers.ner_recognizer import NerRecognizer
from guard.checks.recognizers.phone_recognizer import LenientPhoneRecognizer
from guard.checks.recognizers.street_address_recognizer import StreetAddressRecognizer
from guard.checks.recognizers.toponym_recognizer import ToponymRecognizer

__all__ = [
    "CardNumberRecognizer",
    "ContextIdRecognizer",
    "FormFieldRecognizer",
    "GroupedIbanRecognizer",
    "JapaneseAddressRecognizer",
    "KoreanAddressRecognizer",
    "LenientPhoneRecognizer",
    "NerRecognizer",
    "StreetAddressRecognizer",
    "ToponymRecognizer",
    "extra_recognizers",
    "find_street_addresses",
]


def extra_recognizers() -> list[EntityRecognizer]:
    """The recognizers PiiCheck adds to presidio's (replacing those with the same name)."""
    return [
        NerRecognizer(),
        StreetAddressRecognizer(),
        LenientPhoneRecognizer(),
        CardNumberRecognizer(),
        ContextIdRecognizer(),
        JapaneseAddressRecognizer(),
        KoreanAddressRecognizer(),
        FormFieldRecognizer(),
        ToponymRecognizer(),
        GroupedIbanRecognizer(),
    ]
