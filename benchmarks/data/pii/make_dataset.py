"""Generate the PII evaluation set (dev.jsonl / eval.jsonl) with presidio-evaluator's Faker-based generator.

Rerun (presidio-evaluator is NOT a project dependency; install it into the venv only to regenerate)::

    .venv/bin/pip install -c constraints.txt presidio-evaluator==0.3.2
    .venv/bin/python benchmarks/data/pii/make_dataset.py

The output is deterministic for a given presidio-evaluator/Faker version (seeded Faker, ``random`` and numpy).
eval.jsonl was committed before any recognizer was tuned; tune on dev.jsonl only.

Rows: ``{"text", "spans": [{"type", "start", "end"}], "lang": "en", "template": int}`` (offsets in code points).

What the script does on top of ``PresidioSentenceFaker``:

* Its templates spell line breaks as a literal backslash-n (``Jane Doe\\n\\n12 Main St``); they are turned into real
  newlines before generation, so multi-line addresses look like the text a user would paste.
* Faker's dates end at a fixed date instead of *now*, so the files do not change from run to run.
* The hospital provider is left out: it queries WikiData over the network (no template uses it).
* The six pattern types are rare in the templates (two SSN templates, two IP, three IBAN), so sentences from the
  templates that contain each of them are added until each type has ``MIN_PER_TYPE`` sentences (oversampling).
* Labels are mapped onto guard's entity names (``LABELS`` below). Generator labels not listed keep their own name
  (ORGANIZATION, TITLE, AGE): they are in the file but no guard entity scores them.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

SEED = 42
BASE_SENTENCES = 1600
MIN_PER_TYPE = 90
"""Sentences per pattern type over both splits (so about 45 per split; the script checks >= 30 in each)."""
MIN_PER_TYPE_PER_SPLIT = 30
LOWER_CASE_RATIO = 0.05
"""The generator's own default: 5% of sentences are lower-cased entirely (names included)."""

LABELS = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "LOCATION",  # building number, street, secondary address, postcode
    "GPE": "LOCATION",  # city, state, state abbreviation, country
    "ZIP_CODE": "LOCATION",  # a bare zip code is part of an address like the postcode above
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "IBAN_CODE": "IBAN_CODE",
    "DOMAIN_NAME": "URL",  # Faker's url(): presidio calls these URL
    "DATE_TIME": "DATE_TIME",
    "NRP": "NRP",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
}
"""Generator label -> guard label. Same-label spans separated only by whitespace are merged into one."""

OVERSAMPLED = {
    "credit_card_number": "CREDIT_CARD",
    "phone_number": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "ip_address": "IP_ADDRESS",
    "iban": "IBAN_CODE",
    "email": "EMAIL_ADDRESS",
}
"""Template token -> the guard label whose sentences are topped up to MIN_PER_TYPE."""

FIXED_NOW = datetime(2025, 1, 1)
HERE = Path(__file__).parent


def _templates() -> list[str]:
    from presidio_evaluator.data_generator.presidio_sentence_faker import (  # type: ignore[import-untyped]
        presidio_templates_file_path,
    )

    lines = presidio_templates_file_path.read_text(encoding="utf-8").splitlines()
    return [line.strip().replace("\\n", "\n") for line in lines if line.strip()]


def _fixed_clock_provider() -> type:
    from faker.providers.date_time import Provider as DateTimeProvider

    class FixedClockDateTimeProvider(DateTimeProvider):  # type: ignore[misc]
        """Faker's dates end at *now* by default, which changes the output from run to run: end at a fixed date."""

        def date_time(self, tzinfo: Any = None, end_datetime: Any = None) -> Any:
            return super().date_time(tzinfo=tzinfo, end_datetime=end_datetime or FIXED_NOW)

    return FixedClockDateTimeProvider


def _faker(templates: list[str], seed: int) -> Any:
    from presidio_evaluator.data_generator.faker_extensions import (  # type: ignore[import-untyped]
        AddressProviderNew,
        AgeProvider,
        IpAddressProvider,
        NationalityProvider,
        OrganizationProvider,
        PhoneNumberProviderNew,
        ReligionProvider,
        UsDriverLicenseProvider,
    )
    from presidio_evaluator.data_generator.presidio_sentence_faker import (  # type: ignore[import-untyped]
        PresidioSentenceFaker,
    )

    providers = [
        IpAddressProvider,
        NationalityProvider,
        OrganizationProvider,
        UsDriverLicenseProvider,
        AgeProvider,
        AddressProviderNew,
        PhoneNumberProviderNew,
        ReligionProvider,
        _fixed_clock_provider(),
    ]
    # The person records draw full names with the global ``random`` while the faker is built, before it seeds
    # itself: seed first, or every run gets other names.
    PresidioSentenceFaker.seed(seed)
    return PresidioSentenceFaker(
        locale="en_US",
        lower_case_ratio=LOWER_CASE_RATIO,
        sentence_templates=templates,
        entity_providers=providers,
        random_seed=seed,
    )


def _row(sample: Any) -> dict[str, Any]:
    text: str = sample.full_text
    spans = sorted(
        (
            {
                "type": LABELS.get(span.entity_type, span.entity_type),
                "start": span.start_position,
                "end": span.end_position,
            }
            for span in sample.spans
        ),
        key=lambda s: (s["start"], s["end"]),
    )
    merged: list[dict[str, Any]] = []
    for span in spans:
        # Merge same-type spans separated only by whitespace ("12 Main St\n Apt. 3\n Springfield", "Jane" "Doe").
        if merged and merged[-1]["type"] == span["type"] and not text[merged[-1]["end"] : span["start"]].strip():
            merged[-1]["end"] = max(merged[-1]["end"], span["end"])
        else:
            merged.append(dict(span))
    return {"text": text, "spans": merged, "lang": "en", "template": sample.template_id}


def _generate(templates: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    return [_row(sample) for sample in _faker(templates, seed).generate_new_fake_sentences(count)]


def _types(row: dict[str, Any]) -> set[str]:
    return {span["type"] for span in row["spans"]}


def main() -> None:
    templates = _templates()
    rows = _generate(templates, BASE_SENTENCES, SEED)
    for offset, (token, label) in enumerate(OVERSAMPLED.items(), start=1):
        have = sum(label in _types(row) for row in rows)
        if have < MIN_PER_TYPE:
            subset = [template for template in templates if "{{" + token + "}}" in template.lower()]
            # Local template ids would be indexes into the subset: map them back to the full list.
            extra = _generate(subset, MIN_PER_TYPE - have, SEED + offset)
            for row in extra:
                row["template"] = templates.index(subset[row["template"]])
            rows.extend(extra)
    random.Random(SEED).shuffle(rows)
    dev, evaluation = rows[0::2], rows[1::2]
    for name, split in (("dev", dev), ("eval", evaluation)):
        counts = Counter(label for row in split for label in _types(row))
        for label in OVERSAMPLED.values():
            if counts[label] < MIN_PER_TYPE_PER_SPLIT:
                raise SystemExit(f"{name}: only {counts[label]} sentences with {label}")
        path = HERE / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in split:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{path.name}: {len(split)} sentences; sentences per type: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
