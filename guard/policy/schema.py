"""The policy schema: msgspec Structs that reject unknown keys, unknown entities and unknown categories."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

__all__ = [
    "ACTION_STRENGTH",
    "CLAUSES",
    "PII_ENTITIES",
    "TOXICITY_LABELS",
    "Action",
    "InputChecks",
    "Limits",
    "OutputChecks",
    "PiiConfig",
    "PiiEntity",
    "Policy",
    "ProhibitedCategory",
    "ProhibitedCategoryName",
    "ProhibitedUseConfig",
    "ToxicityConfig",
    "ToxicityLabel",
    "strongest",
]

Action = Literal["allow", "redact", "mask", "hash", "flag", "block"]
"""What a finding does: block > redact/mask/hash (rewrite the span) > flag > allow; the strongest action of a
decision wins. ``mask`` and ``hash`` are PII-only rewrites; the decision of a rewrite is ``redact``."""

ACTION_STRENGTH: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "mask": 2, "hash": 2, "block": 3}
_DECISION = {"mask": "redact", "hash": "redact"}


def strongest(actions: list[str]) -> Action:
    """The decision of a set of findings: the strongest action taken, ``allow`` when there are none."""
    best: Action = "allow"
    for action in actions:
        if ACTION_STRENGTH[action] > ACTION_STRENGTH[best]:
            best = action  # type: ignore[assignment]
    return _DECISION.get(best, best)  # type: ignore[return-value]


PiiEntity = Literal[
    "PERSON",
    "LOCATION",
    "NRP",
    "DATE_TIME",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "CRYPTO",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
    "MEDICAL_LICENSE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
]
"""Entity types presidio's predefined recognizers detect; any other name in a policy is an error."""

ToxicityLabel = Literal["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
"""detoxify's ``original`` labels (after its own renaming)."""

ProhibitedCategoryName = Literal[
    "child_safety",
    "dangerous_activities",
    "weapons",
    "violent_extremism",
    "self_harm",
    "hate",
    "harassment",
    "sexually_explicit",
    "privacy_violation",
    "fraud_malware",
    "misinformation",
]

CLAUSES: dict[str, str] = {
    "child_safety": "Gemma PUP 1: generate content that exploits or abuses children",
    "dangerous_activities": "Gemma PUP 1: facilitate dangerous, illegal or malicious activities",
    "weapons": "Gemma PUP 1: facilitate the making or use of weapons capable of mass harm",
    "violent_extremism": "Gemma PUP 1: promote or incite violent extremism or terrorism",
    "self_harm": "Gemma PUP 1: promote or facilitate self-harm",
    "hate": "Gemma PUP 1: generate hate speech or content that promotes discrimination",
    "harassment": "Gemma PUP 1: harass, intimidate, bully or abuse others",
    "sexually_explicit": "Gemma PUP 4: generate sexually explicit content",
    "privacy_violation": "Gemma PUP 1: violate privacy, e.g. collect or disclose personal data unlawfully",
    "fraud_malware": "Gemma PUP 1: facilitate fraud, scams, phishing or malware",
    "misinformation": "Gemma PUP 3: generate misinformation or impersonate people to deceive",
}
"""The Gemma Prohibited Use Policy clause each category cites in findings."""

Score = Annotated[float, Meta(ge=0.0, le=1.0)]
Name = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Every policy Struct rejects keys it does not know."""


class PiiConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Presidio analysis; each listed entity gets its action (redact = typed numbered placeholder)."""

    enabled: bool = True
    language: Literal["en"] = "en"
    score_threshold: Score = 0.5
    entities: dict[PiiEntity, Action]


class ProhibitedCategory(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Deny rules of one prohibited-use category: case-insensitive regular expressions."""

    action: Action = "block"
    patterns: Annotated[list[str], Meta(min_length=1)]

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression ({exc.msg})") from None


class ProhibitedUseConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    enabled: bool = True
    categories: dict[ProhibitedCategoryName, ProhibitedCategory]


class ToxicityConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """detoxify scores; a label at or above its threshold triggers ``action``."""

    enabled: bool = True
    action: Action = "block"
    thresholds: dict[ToxicityLabel, Score]


class InputChecks(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pii: PiiConfig | None = None
    prohibited_use: ProhibitedUseConfig | None = None


class OutputChecks(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pii: PiiConfig | None = None
    prohibited_use: ProhibitedUseConfig | None = None
    toxicity: ToxicityConfig | None = None


class Limits(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    max_input_chars: Annotated[int, Meta(ge=1, le=10_000_000)] = 32_000
    """Total characters across a request's messages; beyond it a 413."""


class Policy(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One versioned policy file."""

    name: Name
    version: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str = ""
    refusal_message: Annotated[str, Meta(min_length=1)]
    limits: Limits = Limits()
    input: InputChecks = InputChecks()
    output: OutputChecks = OutputChecks()


# Keep the Literal catalogues importable as plain tuples for code that enumerates them.
PII_ENTITIES: tuple[str, ...] = get_args(PiiEntity)
TOXICITY_LABELS: tuple[str, ...] = get_args(ToxicityLabel)
