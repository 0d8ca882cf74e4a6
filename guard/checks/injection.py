"""Prompt injection and jailbreak detection for user and system messages: four rule layers and a classifier.

The four rule layers are pure Python and regular expressions (well under a millisecond for a 100-word text):

- **Control tokens.** Gemma's ``<start_of_turn>``, ``<end_of_turn>``, ``<bos>``... spelled in a message would be
  tokenized as the real tokens and let a caller forge a turn. Variants with whitespace, case, fullwidth brackets or
  zero-width characters are caught too. ``neutralize`` rewrites each with single guillemets (U+2039, U+203A)
  instead of the angle brackets: no tokenizer control token, and the engine's refusal of spelled control tokens no
  longer triggers; ``block`` blocks.
- **Instruction override.** Weighted rules ("ignore all previous instructions", "you are now DAN", "pretend you have
  no restrictions", "reveal your system prompt", role-play jailbreak framings; English, Japanese, Korean, Chinese)
  combined as ``1 - Π(1 - weight)`` over the rules that match, after folding case, NFKC (fullwidth), zero-width
  characters and Cyrillic/Greek look-alikes; then again after folding leetspeak (``1gn0r3 pr3v10us``). The rules are
  data beside the policies (``policies/rules/injection.yaml``), loaded and scored by
  :mod:`guard.checks.injection_rules`.
- **Encoded payloads.** base64, hex and percent-encoded runs are decoded (nested up to twice) and the whole text is
  read in rot13; the result is scored with the same rules. An encoded run alone is never a finding.
- **Tag-character smuggling.** Unicode tag characters (U+E0000 to U+E007F) carry invisible ASCII; their presence is a
  finding (emoji subdivision flags such as 🏴 England excepted), the hidden text is decoded and scored, and the
  rewritten text drops them.

The **classifier** (where the policy sets ``classifier:``) is the injection head of the prohibited-use encoder
(:class:`guard.checks.semantic.SafetyEncoder`), trained on public injection, jailbreak and indirect-injection corpora
with benign look-alikes: it reads the same encoder pass as the prohibited-use classifier, so it adds one matrix
product per text. Its finding spans the whole text or its most suspicious window (``detail: classifier``). A rule
cue too weak to act alone (a combined rule score under the policy's ``threshold``) is combined with the classifier's
probability as independent evidence, ``1 - (1 - rules)(1 - classifier)``, against the classifier threshold
(``detail: classifier+rules`` when the classifier alone would not have crossed it).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote_to_bytes

import msgspec

from guard.checks.base import CheckItem, CheckResult, CheckUnavailable, Finding, Stage
from guard.checks.injection_rules import OverrideRules, OverrideScore, default_rules_path, load_rules
from guard.checks.semantic import SafetyEncoder
from guard.policy.schema import Action, InjectionConfig

__all__ = [
    "CLAUSE",
    "INERT_CLOSE",
    "INERT_OPEN",
    "InjectionCheck",
    "neutralize_control_tokens",
]

CLAUSE = (
    "Gemma PUP 2.4: attempts to override or circumvent safety filters or intentionally drive the model to act in "
    "a manner that contravenes the policy"
)
"""The Gemma Prohibited Use Policy clause every injection finding cites."""

_CHECKED_ROLES = frozenset({"user", "system", None})
INJECTION_HEAD = "injection"
_MAX_DEPTH = 2
_MIN_PRINTABLE = 0.85

# --- folding ---------------------------------------------------------------------------------------------------

_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
# Latin look-alikes an attacker swaps in to dodge English patterns (Cyrillic, Greek).
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝаοαεικνρτυВЕКМНОРСТХАІЈЅ",
    "aeopcyxijsdqwaoaeikvptuBEKMHOPCTXAIJS",
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEETISH = re.compile(r"[a-z][013457@$]|[013457@$][a-z]")
_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyz",
    "nopqrstuvwxyzabcdefghijklm",
)


@dataclass(frozen=True, slots=True)
class _Folded:
    """A text folded for matching, with each folded character's index in the original (None: the same index)."""

    text: str
    origin: list[int] | None

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    return unicodedata.normalize("NFKC", char).translate(_CONFUSABLES).lower()


def _fold(text: str) -> _Folded:
    """Lower case, NFKC (fullwidth → ASCII), no zero-width or tag characters, Latin look-alikes mapped to Latin."""
    if text.isascii():
        return _Folded(text.lower(), None)
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char in _INVISIBLE or _TAG_FIRST <= ord(char) <= _TAG_LAST:
            continue
        folded = char.lower() if char.isascii() else _fold_char(char)
        chars.append(folded)
        origin.extend([index] * len(folded))
    return _Folded("".join(chars), origin)


# --- control tokens --------------------------------------------------------------------------------------------

_CONTROL_NAMES = (
    r"start_of_turn|end_of_turn|bos|eos|pad|unk|mask|unused\d{1,3}|start_of_image|end_of_image|image_soft_token|2mass"
)
INERT_OPEN, INERT_CLOSE = "\u2039", "\u203a"
"""What a neutralised control token's angle brackets become (single guillemets, which NFKC leaves alone)."""
_CONTROL = re.compile(rf"<\s*/?\s*({_CONTROL_NAMES})\s*>|\[@bos@\]")


def neutralize_control_tokens(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """``text`` with every spelled Gemma control token made inert (``<bos>`` becomes ``\u2039bos\u203a``), and the spans
    (in ``text``) and canonical names of the tokens found."""
    if "<" not in text and "[" not in text and text.isascii():
        return text, []
    folded = _fold(text)
    spans = []
    for match in _CONTROL.finditer(folded.text):
        start, end = folded.span(match.start(), match.end())
        spans.append((start, end, match.group(1) or "@bos@"))
    if not spans:
        return text, []
    parts, last = [], 0
    for start, end, name in spans:
        parts += [text[last:start], f"{INERT_OPEN}{name}{INERT_CLOSE}"]
        last = end
    parts.append(text[last:])
    return "".join(parts), spans


# --- encoded payloads ------------------------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?<![0-9A-Fa-fx\\])(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[ :,]?){8,}")
_PERCENT = re.compile(r"(?:[\w.~+-]*%[0-9A-Fa-f]{2}){4,}[\w.~+-]*")


def _printable(data: bytes) -> str | None:
    """``data`` as UTF-8 text when it decodes and is mostly printable (not an image, hash or key), else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8:
        return None
    printable = sum(char.isprintable() or char in "\n\t\r" for char in text)
    return text if printable >= _MIN_PRINTABLE * len(text) else None


def _from_base64(run: str) -> str | None:
    if not any(char.isdigit() or char.isupper() for char in run):
        return None  # a long lower-case word or identifier, not base64
    padded = run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 4)
    try:
        data = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(data)


def _from_hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[ :,]", "", run)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _printable(bytes.fromhex(digits))
    except ValueError:
        return None


def _from_percent(run: str) -> str | None:
    return _printable(unquote_to_bytes(run.replace("+", " ")))


_DECODERS = (("base64", _BASE64, _from_base64), ("hex", _HEX, _from_hex), ("percent", _PERCENT, _from_percent))


def _payloads(text: str, depth: int = 1) -> list[tuple[str, int, int, str]]:
    """Decoded runs of ``text``: (encoding, start, end, decoded text), nested decodes reported at the outer run."""
    found = []
    for encoding, pattern, decode in _DECODERS:
        for match in pattern.finditer(text):
            decoded = decode(match.group(0).strip())
            if decoded is None:
                continue
            found.append((encoding, match.start(), match.end(), decoded))
            if depth < _MAX_DEPTH:
                found += [
                    (f"{encoding}+{inner}", match.start(), match.end(), nested)
                    for inner, _, _, nested in _payloads(decoded, depth + 1)
                ]
    return found


def _best_reading(rules: OverrideRules, text: str) -> OverrideScore | None:
    """The stronger score of ``text`` as written and with leetspeak folded."""
    folded = _fold(text).text
    plain = rules.score(folded)
    if _LEETISH.search(folded):
        leet = rules.score(folded.translate(_LEET))
        if leet is not None and (plain is None or leet.score > plain.score):
            return leet
    return plain


# --- tag characters --------------------------------------------------------------------------------------------

_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_TAGS = re.compile("[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,7}\U000e007f")
_BLACK_FLAG = "\U0001f3f4"


def _is_flag(run: re.Match[str]) -> bool:
    """Whether a run of tag characters is the tail of an emoji subdivision flag (🏴 + region letters + cancel)."""
    start = run.start()
    return start > 0 and run.string[start - 1] == _BLACK_FLAG and _FLAG_TAGS.fullmatch(run.group(0)) is not None


def _smuggled(text: str) -> list[tuple[int, int, str]]:
    """Runs of tag characters that are not an emoji subdivision flag, with the ASCII they spell."""
    if text.isascii():
        return []
    runs = []
    for match in _TAG_RUN.finditer(text):
        if _is_flag(match):
            continue
        hidden = "".join(chr(ord(char) - _TAG_FIRST) for char in match.group(0) if ord(char) < _TAG_LAST)
        runs.append((match.start(), match.end(), hidden))
    return runs


# --- the check -------------------------------------------------------------------------------------------------


class InjectionCheck:
    """Control tokens, instruction-override heuristics, encoded payloads and tag smuggling (see the module doc)."""

    name: ClassVar[str] = "injection"
    description: ClassVar[str] = (
        "heuristics: control tokens, override rules (en/ja/ko/zh), encoded payloads, tag characters"
    )

    def __init__(self, rules: OverrideRules | None = None, classifier: SafetyEncoder | None = None) -> None:
        self.rules = rules if rules is not None else load_rules(default_rules_path())
        """The instruction-override rules (default: the shipped policies/rules/injection.yaml, read now)."""
        self.classifier = classifier if classifier is not None and INJECTION_HEAD in classifier.heads else None

    @classmethod
    def load(cls, rules_path: Path | None = None, classifier: SafetyEncoder | None = None) -> InjectionCheck:
        """The check with the rules of ``rules_path`` (default: the shipped ones; a bad file is a PolicyError) and
        the encoder whose injection head is the classifier layer."""
        return cls(load_rules(rules_path or default_rules_path()), classifier)

    @property
    def layers(self) -> str:
        return self.description + (f" + classifier ({self.classifier.description})" if self.classifier else "")

    def validate(self, config: InjectionConfig) -> None:
        """Raise :class:`CheckUnavailable` if ``config`` asks for the classifier and none is loaded."""
        if config.enabled and config.classifier is not None and self.classifier is None:
            raise CheckUnavailable("the policy sets injection.classifier but no injection classifier is loaded")

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        results = [self._scan(item) for item in items]
        wanted = [i for i, item in enumerate(items) if self._classified(item)]
        if not wanted or self.classifier is None:
            return results
        # A long text (a retrieved document, a tool result) is read window by window and scored by its most
        # suspicious window; the first window is the prohibited-use check's pass, cached.
        spans = {i: self.classifier.windows(items[i].text) for i in wanted}
        texts = [items[i].text[start:end] for i in wanted for start, end in spans[i]]
        probabilities = iter(self.classifier.heads[INJECTION_HEAD].probabilities(self.classifier.embed(texts))[:, 1])
        for i in wanted:
            scored = [(float(next(probabilities)), span) for span in spans[i]]
            probability, (start, end) = max(scored, key=lambda pair: pair[0])
            item, result = items[i], results[i]
            config: InjectionConfig = item.config
            scores = {**result.scores, "classifier": round(probability, 4)}
            findings = result.findings
            # Rule cues too weak to act alone (below the rules' threshold) still count as evidence: the two layers
            # combine as independent signals, ``1 - (1 - rules)(1 - classifier)``, against the classifier's threshold.
            cue = result.scores.get("rules", 0.0) if not findings else 0.0
            combined = 1.0 - (1.0 - cue) * (1.0 - probability)
            if config.classifier is not None and combined >= config.classifier:
                finding = Finding(
                    check=self.name,
                    type="instruction_override",
                    score=round(combined, 4),
                    threshold=config.classifier,
                    action=config.action,
                    start=start,
                    end=end,
                    clause=CLAUSE,
                    stage=item.stage,
                    detail="classifier" if probability >= config.classifier else "classifier+rules",
                )
                findings = (*findings, finding)
            results[i] = msgspec.structs.replace(result, findings=findings, scores=scores)
        return results

    def _classified(self, item: CheckItem) -> bool:
        config: InjectionConfig = item.config
        return (
            self.classifier is not None
            and config.enabled
            and config.classifier is not None
            and item.role in _CHECKED_ROLES
            and bool(item.text)
            and self.classifier.reads(item.text)
        )

    def _scan(self, item: CheckItem) -> CheckResult:
        config: InjectionConfig = item.config
        if not config.enabled or item.role not in _CHECKED_ROLES or not item.text:
            return CheckResult()
        text = item.text
        findings = _Findings(self.name, item.stage, config)
        rewritten, tokens = neutralize_control_tokens(text)
        for start, end, token in tokens:
            findings.add("control_token", 1.0, start, end, token, control=True)
        if config.control_tokens == "block":
            rewritten = text
        folded = _fold(text)
        rules = self.rules
        plain = rules.score(folded.text)
        findings.override(plain, folded, "instruction_override", None)
        if not findings.crossed(plain) and _LEETISH.search(folded.text):
            findings.override(rules.score(folded.text.translate(_LEET)), folded, "instruction_override", "leetspeak")
        if config.decode:
            for encoding, start, end, decoded in _payloads(text):
                findings.override(_best_reading(rules, decoded), None, "encoded_payload", encoding, span=(start, end))
            if not findings.crossed(plain):
                findings.override(rules.score(folded.text.translate(_ROT13)), folded, "encoded_payload", "rot13")
        smuggled = _smuggled(text)
        for start, end, hidden in smuggled:
            findings.add("tag_smuggling", 1.0, start, end, "tag_characters")
            hidden_score = _best_reading(rules, hidden)
            findings.override(hidden_score, None, "instruction_override", "tag_characters", span=(start, end))
        if smuggled:
            # Invisible to the caller and never legitimate outside flags: the model does not get them either.
            rewritten = _TAG_RUN.sub(lambda match: match.group(0) if _is_flag(match) else "", rewritten)
        scores = {"rules": round(plain.score, 4)} if plain is not None else {}
        return CheckResult(findings=tuple(findings.found), text=rewritten if rewritten != text else None, scores=scores)


@dataclass(slots=True)
class _Findings:
    """The findings of one text, built with the item's stage and policy."""

    check: str
    stage: Stage
    config: InjectionConfig
    found: list[Finding] = field(default_factory=list)

    def crossed(self, score: OverrideScore | None) -> bool:
        return score is not None and score.score >= self.config.threshold

    def add(self, kind: str, score: float, start: int, end: int, detail: str, *, control: bool = False) -> None:
        """A finding that is certain (score 1): a control token or tag characters."""
        action: Action = self.config.action
        if control:
            action = "redact" if self.config.control_tokens == "neutralize" else "block"
        self._append(kind, score, 1.0, action, start, end, detail)

    def override(
        self,
        score: OverrideScore | None,
        folded: _Folded | None,
        kind: str,
        detail: str | None,
        *,
        span: tuple[int, int] | None = None,
    ) -> None:
        """A scored finding when ``score`` crosses the threshold; its span is ``span`` or the rule's, mapped back."""
        if score is None or not self.crossed(score):
            return
        if span is None:
            span = folded.span(score.start, score.end) if folded is not None else (score.start, score.end)
        self._append(kind, score.score, self.config.threshold, self.config.action, *span, detail or score.rule)

    def _append(
        self, kind: str, score: float, threshold: float, action: Action, start: int, end: int, detail: str
    ) -> None:
        self.found.append(
            Finding(
                check=self.check,
                type=kind,
                score=score,
                threshold=threshold,
                action=action,
                start=start,
                end=end,
                clause=CLAUSE,
                stage=self.stage,
                detail=detail,
            )
        )
