"""The policy schema: msgspec Structs that reject unknown keys, unknown entities and unknown categories."""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

__all__ = [
    "ACTION_STRENGTH",
    "CLAUSES",
    "PII_ENTITIES",
    "SECRET_TYPES",
    "TOXICITY_LABELS",
    "TOXICITY_MODEL_LABELS",
    "Action",
    "AuditOptions",
    "InjectionConfig",
    "InputChecks",
    "LanguageCode",
    "Limits",
    "OutputChecks",
    "PiiConfig",
    "PiiEntity",
    "PiiEntityRule",
    "PiiRecognizerFile",
    "PiiRecognizerSpec",
    "PiiValidator",
    "Policy",
    "ProhibitedCategory",
    "ProhibitedCategoryName",
    "ProhibitedUseConfig",
    "SecretAction",
    "SecretType",
    "SecretsConfig",
    "ToolArgumentChecks",
    "ToolsPolicy",
    "ToxicityConfig",
    "ToxicityLabel",
    "ToxicityModel",
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
    "JP_MY_NUMBER",
    "JP_POSTAL_CODE",
    "KR_RRN",
    "CN_RESIDENT_ID",
]
"""Entity types presidio's predefined recognizers detect, then the seed-language identifiers our YAML recognizers
(policies/recognizers/) add; seed-language phone numbers are ``PHONE_NUMBER``. Any other name is an error."""

PiiValidator = Literal["jp_my_number", "kr_rrn", "cn_resident_id", "jp_phone", "kr_phone", "cn_phone"]
"""The checksum/validity functions a YAML recognizer may name (implemented in guard/checks/pii_patterns.py)."""

ToxicityLabel = Literal[
    "toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"
]
"""detoxify's labels (after its own renaming); which ones a model scores is :data:`TOXICITY_MODEL_LABELS`."""

LanguageCode = Literal[
    "en", "ja", "ko", "zh",
    "fr", "es", "it", "pt", "tr", "ru",
    "de", "nl", "pl", "sv", "da", "no", "fi", "cs", "ro", "hu", "id", "vi", "uk", "el", "he", "ar", "fa", "hi",
]  # fmt: skip
"""ISO 639-1 codes a toxicity section may route (``languages``): Gemma's seed languages, then detoxify
``multilingual``'s training languages, then others py3langid tells apart (``guard.checks.language``)."""

ToxicityModel = Literal["original", "unbiased", "multilingual"]
"""detoxify's model variants: ``original`` (BERT, Jigsaw 1), ``unbiased`` (RoBERTa, Jigsaw 2, debiased),
``multilingual`` (XLM-R, Jigsaw 3)."""

_ORIGINAL_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
TOXICITY_MODEL_LABELS: dict[str, tuple[str, ...]] = {
    "original": _ORIGINAL_LABELS,
    "unbiased": (*_ORIGINAL_LABELS, "sexual_explicit"),
    "multilingual": (*_ORIGINAL_LABELS, "sexual_explicit"),
}
"""The labels each variant scores (its checkpoint's main classes, as detoxify names them)."""

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
    "child_safety": "Gemma PUP 2.1.1: promoting or generating content related to child sexual abuse or exploitation",
    "dangerous_activities": "Gemma PUP 2.1.2-3: facilitating illegal substances, goods or services, or any crime",
    "weapons": "Gemma PUP 2.5.3: content that facilitates violence, e.g. making or using weapons of mass harm",
    "violent_extremism": "Gemma PUP 2.1.4: promoting or generating violent extremism or terrorist content",
    "self_harm": "Gemma PUP 2.5.4: content that facilitates, promotes or encourages self-harm",
    "hate": "Gemma PUP 2.5.1: content that promotes or encourages hatred",
    "harassment": "Gemma PUP 2.5.2: facilitating harassment or bullying to intimidate, abuse or insult others",
    "sexually_explicit": "Gemma PUP 4: generating sexually explicit content",
    "privacy_violation": "Gemma PUP 2.5.5-8: personal data for harm, tracking people without consent",
    "fraud_malware": "Gemma PUP 2.3.2: content for fraud, scams, phishing or malware",
    "misinformation": "Gemma PUP 3: content to misinform or mislead, incl. impersonating people to deceive",
}
"""The Gemma Prohibited Use Policy clause each category cites in findings."""

Score = Annotated[float, Meta(ge=0.0, le=1.0)]
Name = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Every policy Struct rejects keys it does not know."""


class PiiEntityRule(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One entity's handling when an action name is not enough."""

    action: Action
    threshold: Score | None = None
    """Overrides the section's ``score_threshold`` for this entity."""
    allow: list[str] = []
    """Values of this entity never treated as PII (compared after normalisation, case-insensitively)."""
    keep_last: Annotated[int, Meta(ge=0, le=64)] = 4
    """``mask``: how many trailing characters stay readable (``************1111``)."""
    mask_char: Annotated[str, Meta(min_length=1, max_length=1)] = "*"


class PiiConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Presidio analysis; each listed entity gets an action or a rule. Actions: ``redact`` (typed numbered
    placeholder ``<PERSON_1>``), ``mask`` (``****1111``), ``hash`` (keyed HMAC ``<EMAIL_ADDRESS:3f9a1c2b4d5e>``),
    ``block``, ``flag`` (finding only), ``allow`` (not looked for)."""

    enabled: bool = True
    language: Literal["auto", "en", "ja", "ko", "zh"] = "auto"
    """Which language's NLP pipeline reads the texts; ``auto`` detects it per text from its script."""
    score_threshold: Score = 0.5
    allow_list: list[str] = []
    """Values never treated as PII, whatever their entity (compared after normalisation, case-insensitively)."""
    entities: dict[PiiEntity, Action | PiiEntityRule]
    restore: bool = False
    """Input section only: put the originals back in place of this request's placeholders in the answer (the
    per-request vault; the caller gets them, the audit log and the model never do)."""

    def rule(self, entity: str) -> PiiEntityRule:
        """The entity's rule, an action name standing for a rule with only that action."""
        setting = self.entities[entity]  # type: ignore[index]
        return PiiEntityRule(action=setting) if isinstance(setting, str) else setting


class RecognizerPattern(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    regex: Annotated[str, Meta(min_length=1)]
    score: Score
    """The score of a match (one that passes the recognizer's validator, if it has one)."""

    def __post_init__(self) -> None:
        try:
            re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression ({exc.msg})") from None


class PiiRecognizerSpec(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A pattern recognizer declared in YAML: patterns, context words that raise the score, a validator."""

    name: Annotated[str, Meta(pattern=r"^[A-Z][A-Za-z0-9]{2,63}$")]
    entity: PiiEntity
    patterns: Annotated[list[RecognizerPattern], Meta(min_length=1)]
    context: list[Annotated[str, Meta(pattern=r"^\S+$")]] = []
    """Single words that, found in one of the five tokens before a match, add 0.35 to its score (presidio compares
    them with each token as a substring, so ``電話`` matches ``電話番号は``)."""
    validator: PiiValidator | None = None
    """Matches the validator rejects (bad check digit, impossible date, invalid number) are dropped."""
    description: str = ""


class PiiRecognizerFile(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One file of policies/recognizers/."""

    recognizers: Annotated[list[PiiRecognizerSpec], Meta(min_length=1)]


class ProhibitedCategory(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One prohibited-use category and the layers that look for it; a layer is on for it when configured here."""

    action: Action = "block"
    patterns: list[str] = msgspec.field(default_factory=list)
    """Deny rules: case-insensitive regular expressions."""
    exceptions: list[str] = msgspec.field(default_factory=list)
    """Texts matching one of these case-insensitive regular expressions are not deny-ruled for this category (a
    question about what happens in a film); the classifier and the judge still read them."""
    embedding: Score | None = None
    """Threshold on the embedding classifier's probability for this category (all-MiniLM-L6-v2 + the shipped head)."""
    judge: Score | None = None
    """Threshold on the judge's P(Yes) for this category (a ShieldGemma-style prompt on the judge model)."""
    guideline: Annotated[str, Meta(min_length=1, max_length=2000)] | None = None
    """The judge's principle for this category, completing "shall not contain or seek generation of content
    that ..."; unset, a built-in ShieldGemma-style guideline is used."""

    def __post_init__(self) -> None:
        for pattern in (*self.patterns, *self.exceptions):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression ({exc.msg})") from None
        if self.exceptions and not self.patterns:
            raise ValueError("exceptions only lift deny rules: set patterns too")
        if not self.patterns and self.embedding is None and self.judge is None:
            raise ValueError("configure at least one layer: patterns, embedding or judge")
        if self.guideline is not None and self.judge is None:
            raise ValueError("guideline is only read by the judge layer: set a judge threshold too")


class ProhibitedUseConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Prohibited-use detection: deny rules, the embedding classifier and the judge, per category."""

    enabled: bool = True
    judge_required: bool = True
    """When a category sets a judge threshold but the service runs without a judge model (no GUARD_JUDGE_MODEL):
    true fails closed (the service refuses the policy at start-up and its requests with a 503); false skips the
    judge layer and keeps the others."""
    categories: dict[ProhibitedCategoryName, ProhibitedCategory]


class ToxicityConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """detoxify scores; a label at or above its threshold triggers ``action``.

    Each text is scored by ``model``, unless its language (ja/ko/zh from the script, other languages by py3langid:
    :data:`LanguageCode`) is routed elsewhere: ``languages`` names a variant per language, and ``non_english`` one
    for every other language not listed. Every threshold must name a label of every variant the section can route
    to."""

    enabled: bool = True
    action: Action = "block"
    model: ToxicityModel = "original"
    languages: dict[LanguageCode, ToxicityModel] = {}
    non_english: ToxicityModel | None = None
    thresholds: dict[ToxicityLabel, Score]

    def __post_init__(self) -> None:
        for variant in sorted(self.variants()):
            missing = sorted(set(self.thresholds) - set(TOXICITY_MODEL_LABELS[variant]))
            if missing:
                raise ValueError(f"detoxify's {variant!r} model has no label {', '.join(map(repr, missing))}")

    def variants(self) -> frozenset[str]:
        """Every variant this section can send a text to."""
        routed = {*self.languages.values(), *([self.non_english] if self.non_english else [])}
        return frozenset({self.model, *routed})

    def variant_for(self, language: str) -> str:
        """The variant that scores a text in ``language``."""
        if language in self.languages:
            return self.languages[language]  # type: ignore[index]
        if language != "en" and self.non_english is not None:
            return self.non_english
        return self.model


ControlTokenPolicy = Literal["neutralize", "block"]


class InjectionConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Prompt-injection and jailbreak heuristics on user and system messages.

    Gemma control tokens spelled in text (``<start_of_turn>``...) are made inert (``neutralize``: the angle brackets
    become single guillemets, a ``redact`` finding) or ``block`` the request. Instruction-override phrasing is scored
    (also after folding leetspeak, decoding base64/hex/rot13/percent-encoded runs and Unicode tag characters); a
    score at or above ``threshold`` takes ``action``. Hidden tag characters alone are a finding."""

    enabled: bool = True
    action: Action = "block"
    threshold: Score = 0.5
    control_tokens: ControlTokenPolicy = "neutralize"
    decode: bool = True
    """Decode base64/hex/rot13/percent-encoded runs and rescan them."""
    classifier: Score | None = None
    """Threshold on the trained injection classifier's probability (None: the rule layers only)."""


SecretType = Literal[
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GCP_API_KEY",
    "GCP_CREDENTIALS",
    "AZURE_KEY",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "STRIPE_KEY",
    "OPENAI_KEY",
    "PRIVATE_KEY",
    "JWT",
    "PASSWORD",
    "API_KEY",
    "SECRET",
]
"""The secrets check's finding types, most specific first (``SECRET``: a high-entropy token of no known format)."""
SecretAction = Literal["allow", "redact", "flag", "block"]


class SecretsConfig(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Credentials (guard/checks/secrets.py): ``redact`` writes a typed placeholder (``<GITHUB_TOKEN_1>``), ``block``
    refuses, ``flag`` only records; ``types`` overrides ``action`` per type (``allow``: not looked for). Whatever
    the action, the stored text never holds a detected secret."""

    enabled: bool = True
    action: SecretAction = "redact"
    types: dict[SecretType, SecretAction] = {}

    def action_for(self, secret_type: str) -> SecretAction:
        """The action for findings of ``secret_type``."""
        action: SecretAction = self.types.get(secret_type, self.action)  # type: ignore[call-overload]
        return action


class InputChecks(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pii: PiiConfig | None = None
    secrets: SecretsConfig | None = None
    prohibited_use: ProhibitedUseConfig | None = None
    injection: InjectionConfig | None = None


class OutputChecks(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pii: PiiConfig | None = None
    secrets: SecretsConfig | None = None
    prohibited_use: ProhibitedUseConfig | None = None
    toxicity: ToxicityConfig | None = None


class ToolArgumentChecks(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Checks on the string values of the arguments the model generates for a tool call, before the caller sees
    them: PII (the entity actions: a redacted value becomes its placeholder inside the JSON), secrets and
    prohibited use (``block`` refuses the whole answer)."""

    pii: PiiConfig | None = None
    secrets: SecretsConfig | None = None
    prohibited_use: ProhibitedUseConfig | None = None


FunctionGlob = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.*?\[\]!-]+$")]


class ToolsPolicy(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Tool calls (``tools`` on chat completions): which functions may be called, and the checks on generated
    arguments. Tool *results* (``role: tool`` messages) are untrusted input: the ``input`` section checks them
    like user text (injection, secrets, PII)."""

    allowed: list[FunctionGlob] = msgspec.field(default_factory=lambda: ["*"])
    """Function names (shell-style globs, ``fnmatch``) the model may call; others are not offered to it."""
    denied: list[FunctionGlob] = []
    """Function names never called, whatever ``allowed`` says: not offered to the model, a ``tool_choice`` naming
    one is blocked, and a generated call of one is blocked."""
    arguments: ToolArgumentChecks | None = None
    """Checks on generated arguments; unset, the ``output`` section's ``pii``, ``secrets`` and ``prohibited_use``
    apply to them."""

    def permits(self, name: str) -> bool:
        """Whether a function called ``name`` may be called under this policy."""
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.allowed) and not any(
            fnmatch.fnmatchcase(name, glob) for glob in self.denied
        )

    def argument_checks(self, output: OutputChecks) -> ToolArgumentChecks:
        """The section that checks generated arguments (``arguments``, or the output section's checks)."""
        if self.arguments is not None:
            return self.arguments
        return ToolArgumentChecks(pii=output.pii, secrets=output.secrets, prohibited_use=output.prohibited_use)


class Limits(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    max_input_chars: Annotated[int, Meta(ge=1, le=10_000_000)] = 32_000
    """Total characters across a request's messages; beyond it a 413."""


class AuditOptions(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What the audit row of a decision under this policy keeps (policy name, version, sha256, decision, findings
    and latencies are always kept)."""

    store_text: bool = True
    """The redacted input and output texts; false keeps metadata only (a replay then has no text to re-check)."""
    store_scores: bool = True
    """Every check's raw scores per text (what a replay re-thresholds); false keeps the findings only."""


class Policy(_Strict, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One versioned policy file."""

    name: Name
    version: Annotated[str, Meta(min_length=1, max_length=64)]
    extends: Name | None = None
    """Another policy of the same directory, by name: its resolved YAML is deep-merged under this file's (this
    file's keys win; mappings merge recursively; lists replace) and the result is validated."""
    description: str = ""
    refusal_message: Annotated[str, Meta(min_length=1)]
    allow_all: bool = False
    """A policy with no enabled check in either stage is refused unless this says it is meant to check nothing."""
    audit: AuditOptions = AuditOptions()
    limits: Limits = Limits()
    input: InputChecks = InputChecks()
    output: OutputChecks = OutputChecks()
    tools: ToolsPolicy = ToolsPolicy()
    shadow: Name | None = None
    """A candidate policy (by name, in the same directory) evaluated on the same traffic without affecting the
    response; the audit row records its decision beside this one's (``guard policy shadow-report``)."""

    def __post_init__(self) -> None:
        if not self.allow_all and not self.enabled_checks():
            raise ValueError("this policy checks nothing; set allow_all: true if that is intended")

    def enabled_checks(self) -> list[str]:
        """``stage.check`` for every configured and enabled check section."""
        return [
            f"{stage}.{field}"
            for stage, section in (("input", self.input), ("output", self.output))
            for field in section.__struct_fields__
            if (config := getattr(section, field)) is not None and config.enabled
        ]


# Keep the Literal catalogues importable as plain tuples for code that enumerates them.
PII_ENTITIES: tuple[str, ...] = get_args(PiiEntity)
SECRET_TYPES: tuple[str, ...] = get_args(SecretType)
TOXICITY_LABELS: tuple[str, ...] = get_args(ToxicityLabel)
