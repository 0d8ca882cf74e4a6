"""Prompt injection and jailbreak heuristics for user and system messages.

Four layers, all pure Python and regular expressions (well under a millisecond for a 100-word text):

- **Control tokens.** Gemma's ``<start_of_turn>``, ``<end_of_turn>``, ``<bos>``... spelled in a message would be
  tokenized as the real tokens and let a caller forge a turn. Variants with whitespace, case, fullwidth brackets or
  zero-width characters are caught too. ``neutralize`` rewrites each with single guillemets (U+2039, U+203A)
  instead of the angle brackets: no tokenizer control token, and the engine's refusal of spelled control tokens no
  longer triggers; ``block`` blocks.
- **Instruction override.** Weighted rules ("ignore all previous instructions", "you are now DAN", "pretend you have
  no restrictions", "reveal your system prompt", role-play jailbreak framings; English, Japanese, Korean, Chinese)
  combined as ``1 - Π(1 - weight)`` over the rules that match, after folding case, NFKC (fullwidth), zero-width
  characters and Cyrillic/Greek look-alikes; then again after folding leetspeak (``1gn0r3 pr3v10us``).
- **Encoded payloads.** base64, hex and percent-encoded runs are decoded (nested up to twice) and the whole text is
  read in rot13; the result is scored with the same rules. An encoded run alone is never a finding.
- **Tag-character smuggling.** Unicode tag characters (U+E0000 to U+E007F) carry invisible ASCII; their presence is a
  finding (emoji subdivision flags such as 🏴 England excepted), the hidden text is decoded and scored, and the
  rewritten text drops them.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar
from urllib.parse import unquote_to_bytes

from guard.checks.base import CheckItem, CheckResult, Finding, Stage
from guard.policy.schema import Action, InjectionConfig

__all__ = [
    "CLAUSE",
    "INERT_CLOSE",
    "INERT_OPEN",
    "InjectionCheck",
    "OverrideScore",
    "neutralize_control_tokens",
    "override_score",
]

CLAUSE = (
    "Gemma PUP 2.4: attempts to override or circumvent safety filters or intentionally drive the model to act in "
    "a manner that contravenes the policy"
)
"""The Gemma Prohibited Use Policy clause every injection finding cites."""

_CHECKED_ROLES = frozenset({"user", "system", None})
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


# --- instruction-override rules ---------------------------------------------------------------------------------

_SEP = r"[\W_]+"
_ANY_WORDS = r"(?:[\W_]+\w+){0,3}?"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    weight: float
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    """Literals at least one of which every match contains: a text with none skips the regular expression."""


def _rule(name: str, weight: float, pattern: str) -> _Rule:
    """A rule whose pattern uses ``' '`` for any run of separators and ``' … '`` for up to three filler words."""
    expanded = pattern.replace(" … ", _ANY_WORDS + _SEP).replace(" ", _SEP)
    return _Rule(name, weight, re.compile(expanded, re.MULTILINE), _ANCHORS[name])


_DROP_WORDS = ("ignore", "disregard", "forget", "skip", "bypass", "override", "drop", "abandon", "discard", "neglect")
_LIMIT_WORDS = (
    "restriction", "limit", "rule", "filter", "boundar", "guideline", "censor", "constraint", "ethic", "moral",
    "safeguard", "guardrail", "polic",
)  # fmt: skip
_MODE_WORDS = ("mode",)
_UNFILTERED_WORDS = (
    "unfiltered", "uncensored", "unrestricted", "amoral", "unethical", "evil", "rogue", "jailbroken", "unchained",
    "unaligned",
)  # fmt: skip
_DISABLE_WORDS = (
    "disable", "turn", "switch", "deactivate", "bypass", "circumvent", "override", "remove", "ignore", "evade",
    "around", "disregard", "drop", "lift",
)  # fmt: skip
# Checking a few substrings is ~50x cheaper than a regular expression that starts with an alternation, and most
# texts contain none of a rule's anchors. Each rule's anchors are words its pattern cannot match without.
_ANCHORS: dict[str, tuple[str, ...]] = {
    "ignore_previous": (*_DROP_WORDS, "aside"),
    "ignore_your_rules": (*_DROP_WORDS, "aside"),
    "ignore_rules": (*_DROP_WORDS, "aside"),
    "forget_everything": ("forget", "ignore", "disregard"),
    "new_instructions": ("instructions", "rules", "directives", "prompt", "task"),
    "fake_system_turn": ("system", "admin", "developer", "sudo"),
    "foreign_control_tokens": ("<|", "inst]", "sys>>"),
    "you_are_now": ("now",),
    "dan": ("dan", "anything"),
    "named_jailbreak": ("confidant", "machiavellian", "dan", "opposite", "antigpt", "mongo", "stan", "norms"),
    "jailbreak_word": ("jailbr",),
    "special_mode": _MODE_WORDS,
    "developer_mode": _MODE_WORDS,
    "developer_mode_output": _MODE_WORDS,
    "respond_in_mode": _MODE_WORDS,
    "pretend_no_limits": _LIMIT_WORDS,
    "you_have_no_limits": _LIMIT_WORDS,
    "no_limits": _LIMIT_WORDS,
    "unfiltered_ai": _UNFILTERED_WORDS,
    "reveal_your_prompt": ("prompt", "message", "instruction", "rules"),
    "reveal_the_prompt": ("prompt", "instruction"),
    "repeat_above": ("repeat", "print", "output", "copy", "recite", "reproduce"),
    "override_safety": _DISABLE_WORDS,
    "override_the_safety": ("safety", "ethical", "moral", "ai"),
    "game_framing": ("let", "hypothetical", "fictional"),
    "stay_in_character": ("character",),
    "never_refuse": ("refuse", "decline", "say", "reject", "apologi", "warn", "disclaimer", "mention"),
    "no_disclaimers": ("warning", "disclaimer", "moral", "lecture", "refusal"),
    "from_now_on": ("now", "henceforth", "rest"),
    "ignore_previous_ja": ("無視", "忘れ"),
    "reveal_prompt_ja": ("システムプロンプト",),
    "no_limits_ja": ("無視", "解除", "を外", "縛られ"),
    "jailbreak_ja": ("開発者モード", "脱獄", "ジェイルブレイク"),
    "ignore_previous_ko": ("무시", "잊어"),
    "reveal_prompt_ko": ("프롬프트",),
    "jailbreak_ko": ("탈옥", "모드"),
    "ignore_previous_zh": ("忽略", "无视", "忘记", "忽視", "無視", "忘記", "不要理"),
    "reveal_prompt_zh": ("提示",),
    "jailbreak_zh": ("越狱", "越獄", "模式"),
}


_PAST = r"(?:previous|prior|above|preceding|earlier|initial|original|old|former|foregoing|system|developer)"
_ORDERS = (
    r"(?:instructions?|prompts?|rules|directives?|directions|guidelines|commands?|orders|context|programming"
    r"|constraints|restrictions|guardrails|policies|policy|settings)"
)
_LIMITS = (
    r"(?:restrictions|limits|limitations|rules|filters|boundaries|guidelines|censorship|constraints|ethics|morals"
    r"|morality|safeguards|guardrails|policies|content policy)"
)
_DROP = r"(?:ignore|disregard|forget|skip|bypass|override|drop|abandon|discard|neglect|set aside)"
_RULES: tuple[_Rule, ...] = (
    _rule(
        "ignore_previous",
        0.9,
        rf"\b{_DROP}(?: (?:all|any|every|each|the|your|my|of|these|those|its|current|existing|other|whatever))*"
        rf" {_PAST}(?: \w+)? {_ORDERS}\b",
    ),
    _rule("ignore_your_rules", 0.8, rf"\b{_DROP} … your (?:\w+ )?{_ORDERS}\b"),
    _rule("ignore_rules", 0.4, rf"\b{_DROP}(?: (?:all|any|the|these|those))* (?:instructions|rules|guidelines)\b"),
    _rule(
        "forget_everything",
        0.7,
        r"\b(?:forget|ignore|disregard) (?:everything|all)(?: (?:you (?:were|have been) told|you know about your"
        r"|(?:said|written|stated) (?:above|before)|above|before|so far|previously|prior))\b",
    ),
    _rule(
        "new_instructions",
        0.5,
        r"\b(?:new|updated|real|actual|true|admin|override|secret) (?:instructions|rules"
        r"|directives|system prompt|task)\s*:",
    ),
    _rule("fake_system_turn", 0.45, r"^\s*(?:#+|\[|<\|?|\*\*)?\s*(?:system|admin|developer|sudo)\s*(?:\]|\|?>|:|\*\*)"),
    _rule(
        "foreign_control_tokens",
        0.4,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?inst\]"
        r"|<</?sys>>",
    ),
    _rule(
        "you_are_now",
        0.85,
        r"\byou(?: are|'re| r) now (?:dan\b|an? (?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral"
        r"|unethical|free)|free (?:from|of)|no longer (?:bound|restricted|an? ai|limited)|in (?:developer|god|jailbreak"
        r"|dan|unrestricted|unfiltered|evil) mode|not bound)",
    ),
    _rule(
        "dan",
        0.85,
        r"\bdo anything now\b|\bdan (?:mode|prompt|jailbreak)\b|\b(?:act as|you are|you're|become|pretend to be"
        r"|roleplay as|stay) (?:an? )?dan\b",
    ),
    _rule(
        "named_jailbreak",
        0.8,
        r"\b(?:evil confidant|always intelligent and machiavellian|betterdan|anti ?dan|opposite mode|antigpt"
        r"|mongo tom|stan,? (?:which )?stands for|strive to avoid norms)\b",
    ),
    _rule("jailbreak_word", 0.35, r"\bjailbr(?:ea|o)k(?:en|ed|ing|s)?\b"),
    _rule("special_mode", 0.45, r"\b(?:god|dan|jailbreak|jailbroken|unrestricted|unfiltered|evil|opposite) mode\b"),
    _rule("developer_mode", 0.2, r"\bdev(?:eloper)? mode\b"),
    _rule("developer_mode_output", 0.4, r"\bdeveloper mode (?:output|response|enabled)\b"),
    _rule(
        "respond_in_mode",
        0.7,
        r"\b(?:you are|you're|you will|act|now|respond|answer|reply|operate) … (?:in|with|using) (?:developer|god|dan"
        r"|jailbreak|unrestricted|unfiltered|evil) mode\b",
    ),
    _rule(
        "pretend_no_limits",
        0.8,
        rf"\b(?:pretend|imagine|act as if|act like|behave as if|assume|suppose|roleplay|role play)(?: that)?"
        rf" (?:you|you're|you are|u)\b.{{0,40}}?\b(?:no|without(?: any)?|free (?:of|from)|not bound by|unbound by"
        rf"|(?:don't|do not) have(?: any)?|are not subject to)(?: \w+)? {_LIMITS}\b",
    ),
    _rule(
        "you_have_no_limits",
        0.6,
        rf"\byou(?: now)? (?:have no|have zero|don't have any|do not have any|are free (?:of|from)|are not bound by"
        rf"|are not restricted by|no longer have)(?: \w+)? {_LIMITS}\b",
    ),
    _rule("no_limits", 0.15, rf"\b(?:no|without(?: any)?) {_LIMITS}\b"),
    _rule(
        "unfiltered_ai",
        0.55,
        r"\b(?:unfiltered|uncensored|unrestricted|amoral|unethical|evil|rogue|jailbroken|unchained|unaligned)"
        r" (?:ai|assistant|model|chatbot|version of (?:yourself|you)|llm|gpt|gemma|persona|bot)\b",
    ),
    _rule(
        "reveal_your_prompt",
        0.85,
        r"\b(?:reveal|show|print|output|display|repeat|recite|leak|dump|tell|give|share|spell out|write out|copy"
        r"|paste|list|what (?:is|are|was|were)|what's) … (?:your|ur) (?:\w+ )?(?:system (?:prompt|message|instructions)"
        r"|initial (?:prompt|instructions)|hidden (?:prompt|instructions|rules)|original (?:prompt|instructions)"
        r"|pre ?prompt|secret (?:instructions|prompt|rules)|developer (?:message|instructions)|instructions)\b",
    ),
    _rule(
        "reveal_the_prompt",
        0.45,
        r"\b(?:reveal|show|print|output|display|repeat|recite|leak|dump|tell|give) … (?:the|its) (?:system prompt"
        r"|hidden (?:prompt|instructions)|initial instructions|secret instructions|pre ?prompt)\b",
    ),
    _rule(
        "repeat_above",
        0.7,
        r"\b(?:repeat|print|output|copy|recite|reproduce) (?:all |everything |the (?:\w+ )?(?:text|words|lines"
        r"|content|instructions|messages?) )(?:above|before this|preceding|verbatim)",
    ),
    _rule(
        "override_safety",
        0.75,
        r"\b(?:disable|turn off|switch off|deactivate|bypass|circumvent|override|remove|ignore|evade|get around"
        r"|disregard|drop|lift) … (?:your|its) (?:\w+ ){0,2}?(?:filters?|guardrails|safeguards|restrictions"
        r"|censorship|programming|safety|ethics|alignment|moderation|content polic(?:y|ies))\b",
    ),
    _rule(
        "override_the_safety",
        0.6,
        r"\b(?:disable|turn off|switch off|deactivate|bypass|circumvent|override|evade|get around|disregard)"
        r"(?: (?:the|all|any))? (?:safety|ethical|moral|ai) (?:filters?|guardrails|safeguards|restrictions"
        r"|guidelines|measures|features|settings|protocols|alignment)\b",
    ),
    _rule(
        "game_framing",
        0.25,
        r"\b(?:let's|lets|let us) (?:play a game|roleplay|role play)\b|\bhypothetically speaking\b"
        r"|\bin this (?:hypothetical|fictional) (?:scenario|story|world)\b",
    ),
    _rule("stay_in_character", 0.35, r"\b(?:stay in character|(?:never|don't|do not) break character)\b"),
    _rule(
        "never_refuse",
        0.35,
        r"\b(?:never|don't|do not|won't|will not|must not|cannot|can't|shall not|may not) (?:ever )?(?:refuse"
        r"|decline|say no|reject|apologi[sz]e|warn|add (?:any )?(?:warnings|disclaimers)"
        r"|mention (?:that you are an ai|ethics))\b",
    ),
    _rule(
        "no_disclaimers",
        0.25,
        r"\b(?:no|without(?: any)?) (?:warnings|disclaimers|moral(?:izing)?|lectures|refusals)\b",
    ),
    _rule("from_now_on", 0.15, r"\b(?:from now on|henceforth|for the rest of this conversation)\b"),
    # Japanese, Korean, Chinese (the seed models' languages; matched on the folded text).
    _rule(
        "ignore_previous_ja",
        0.9,
        r"(?:以前|前|これまで|上記|今まで|先ほど|最初|上)の(?:すべての|全ての|全部の)?(?:指示|命令|指令|ルール|制約|設定|プロンプト)"
        r"(?:を|は)(?:すべて|全て|全部)?(?:無視|忘れ)",
    ),
    _rule(
        "reveal_prompt_ja",
        0.85,
        r"システムプロンプト(?:を|の内容を|の全文を)?(?:表示|出力|教え|見せ|開示|繰り返|書き出)",
    ),
    _rule("no_limits_ja", 0.3, r"(?:制限|制約|ルール|フィルター|倫理)(?:を無視|を解除|を外|に縛られ)"),
    _rule("jailbreak_ja", 0.35, r"開発者モード|脱獄|ジェイルブレイク"),
    _rule(
        "ignore_previous_ko",
        0.9,
        r"(?:이전|앞의|위의|기존|지금까지의?)\s*(?:모든\s*)?(?:지시|지침|명령|규칙|지시사항|프롬프트)(?:을|를|은|는)?\s*(?:모두\s*)?"
        r"(?:무시|잊어)",
    ),
    _rule("reveal_prompt_ko", 0.85, r"시스템\s*프롬프트(?:를|을)?\s*(?:보여|알려|출력|공개)"),
    _rule("jailbreak_ko", 0.35, r"탈옥|개발자\s*모드"),
    _rule(
        "ignore_previous_zh",
        0.9,
        r"(?:忽略|无视|忘记|忽視|無視|忘記|不要理会|不要理會)(?:你)?(?:之前|以前|先前|上面|以上|上述|所有|全部)(?:的)?(?:所有|全部)?"
        r"(?:的)?(?:指令|指示|说明|說明|规则|規則|提示|设定|設定)",
    ),
    _rule(
        "reveal_prompt_zh", 0.85, r"(?:显示|顯示|输出|輸出|告诉我|告訴我|透露|重复|重複|打印)(?:你的)?(?:系统|系統)提示"
    ),
    _rule("jailbreak_zh", 0.35, r"越狱|越獄|开发者模式|開發者模式"),
)


@dataclass(frozen=True, slots=True)
class OverrideScore:
    """A combined rule score with the span (in the folded text) and name of the strongest matching rule."""

    score: float
    start: int
    end: int
    rule: str


def override_score(folded: str) -> OverrideScore | None:
    """The combined instruction-override score of an already folded text: ``1 - Π(1 - weight)`` over the rules
    that match, with the span of the strongest rule's first match (None when no rule matches)."""
    miss = 1.0
    best: tuple[float, int, int, str] | None = None
    for rule in _RULES:
        if not any(anchor in folded for anchor in rule.anchors):
            continue
        match = rule.pattern.search(folded)
        if match is None:
            continue
        miss *= 1.0 - rule.weight
        if best is None or rule.weight > best[0]:
            best = (rule.weight, match.start(), match.end(), rule.name)
    if best is None:
        return None
    return OverrideScore(round(1.0 - miss, 4), best[1], best[2], best[3])


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


def _best_reading(text: str) -> OverrideScore | None:
    """The stronger score of ``text`` as written and with leetspeak folded."""
    folded = _fold(text).text
    plain = override_score(folded)
    if _LEETISH.search(folded):
        leet = override_score(folded.translate(_LEET))
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

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        return [self._scan(item) for item in items]

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
        plain = override_score(folded.text)
        findings.override(plain, folded, "instruction_override", None)
        if not findings.crossed(plain) and _LEETISH.search(folded.text):
            findings.override(override_score(folded.text.translate(_LEET)), folded, "instruction_override", "leetspeak")
        if config.decode:
            for encoding, start, end, decoded in _payloads(text):
                findings.override(_best_reading(decoded), None, "encoded_payload", encoding, span=(start, end))
            if not findings.crossed(plain):
                findings.override(override_score(folded.text.translate(_ROT13)), folded, "encoded_payload", "rot13")
        smuggled = _smuggled(text)
        for start, end, hidden in smuggled:
            findings.add("tag_smuggling", 1.0, start, end, "tag_characters")
            findings.override(_best_reading(hidden), None, "instruction_override", "tag_characters", span=(start, end))
        if smuggled:
            # Invisible to the caller and never legitimate outside flags: the model does not get them either.
            rewritten = _TAG_RUN.sub(lambda match: match.group(0) if _is_flag(match) else "", rewritten)
        return CheckResult(findings=tuple(findings.found), text=rewritten if rewritten != text else None)


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
