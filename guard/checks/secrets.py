"""Secrets: credentials in prompts and answers, found by detect-secrets' plugins plus provider token formats.

Two detectors, their spans joined:

1. **detect-secrets** (Yelp, Apache-2.0) through its collection scanner: ``SecretsCollection.scan_file`` over the
   text as an in-memory file (``memfd_create``: never on disk), with its default plugins (AWS, Azure storage,
   GitHub, GitLab, JWT, private keys, Slack, Stripe, OpenAI, basic auth, keywords, high-entropy strings...) and
   default filters. Not ``scan_line``: that runs the plugins' eager search and flags plain sentences. Its public-IP
   plugin is left out (IP addresses are PII); its high-entropy findings pass the look-alike filters below.
2. **Provider formats** (:data:`PROVIDER_PATTERNS`): the documented prefixes and shapes the plugins miss or only
   half-cover — AWS secret access keys beside their keyword, GCP API keys, OAuth client secrets and service-account
   key ids, Azure connection-string keys, fine-grained GitHub tokens, every GitLab token prefix, Slack webhooks,
   OpenAI project keys, whole private-key blocks (escaped ``\\n`` in JSON too, or cut off), passwords in URLs and in
   ``key = value`` assignments, and bare high-entropy tokens (a PEM body line on its own in a stream).

Look-alikes are dropped before a finding is made: hex-only strings (commit hashes, checksums, ETags), UUIDs,
base64 that decodes to readable text, subresource-integrity digests (``sha384-...``), templated or indirect values
(``${DB_PASSWORD}``, ``os.environ[...]``), and guard's own placeholders.

Each finding is typed (``GITHUB_TOKEN``, ``PRIVATE_KEY``...; :data:`SECRET_TYPES`) and takes its policy action:
``redact`` writes a typed placeholder (``<GITHUB_TOKEN_1>``, numbered by the request scope like PII), ``block`` and
``flag`` leave the text. The stage's stored copy replaces every finding whatever its action, so no secret is stored.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from guard.checks.base import PLACEHOLDER, CheckItem, CheckResult, CheckUnavailable, Finding, Rewrite
from guard.policy import SecretsConfig
from guard.policy.schema import SECRET_TYPES as _SCHEMA_TYPES

__all__ = ["PROVIDER_PATTERNS", "SECRET_TYPES", "SecretsCheck"]

SECRET_TYPES = _SCHEMA_TYPES
"""The finding types, most specific first (an overlap keeps the earlier type); declared in the policy schema."""

_PLUGIN_TYPES = {
    "AWS Access Key": "AWS_ACCESS_KEY",
    "Azure Storage Account access key": "AZURE_KEY",
    "Basic Auth Credentials": "PASSWORD",
    "GitHub Token": "GITHUB_TOKEN",
    "GitLab Token": "GITLAB_TOKEN",
    "JSON Web Token": "JWT",
    "Private Key": "PRIVATE_KEY",
    "Slack Token": "SLACK_TOKEN",
    "Stripe Access Key": "STRIPE_KEY",
    "OpenAI Token": "OPENAI_KEY",
    "Secret Keyword": "PASSWORD",
    "Base64 High Entropy String": "SECRET",
    "Hex High Entropy String": "SECRET",
}
"""detect-secrets' secret types → ours; the other provider plugins (Twilio, SendGrid, npm, PyPI...) → API_KEY."""

_LEFT_OUT_PLUGINS = frozenset({"IPPublicDetector"})
_LEFT_OUT_FILTERS = ("detect_secrets.filters.heuristic.is_indirect_reference",)
"""Its regex takes ~12 ms on a 100-word line (prompts are long lines, code is not); ``_INDIRECT`` does its job for
the values that matter here (``password = get_secret(...)``)."""

_KEYWORD = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credentials?)"
PROVIDER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # AWS IAM User Guide ("unique ID prefixes", "managing access keys"): AKIA/ASIA... + 16; secret key 40 base64.
    ("AWS_ACCESS_KEY", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z2-7]{16}(?![A-Z0-9])")),
    (
        "AWS_SECRET_KEY",
        re.compile(
            r"(?i:secret[\w-]{0,20}?)[\"']?\s*(?:[:=,]|\bis\b|\band\b)?\s*[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    # Google Cloud: API keys (AIza + 35), OAuth client secrets (GOCSPX-), service-account key files.
    ("GCP_API_KEY", re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])")),
    ("GCP_CREDENTIALS", re.compile(r"(?<![\w-])GOCSPX-[0-9A-Za-z_-]{28}(?![\w-])")),
    ("GCP_CREDENTIALS", re.compile(r"\"private_key_id\"\s*:\s*\"(?P<secret>[0-9a-f]{40})\"")),
    # Azure Storage / Service Bus / Event Hubs connection strings: AccountKey=..., SharedAccessKey=..., sig=...
    ("AZURE_KEY", re.compile(r"(?i:AccountKey|SharedAccessKey|AccessKey|sig)=(?P<secret>[A-Za-z0-9+/%]{20,}={0,2})")),
    # GitHub token formats (ghp_, gho_, ghu_, ghs_, ghr_; fine-grained github_pat_).
    ("GITHUB_TOKEN", re.compile(r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})")),
    # GitLab token prefixes (glpat-, glptt-, gldt-, glrt-, glcbt-, gloas-, glft-, glimt-, glagent-, glsoat-).
    ("GITLAB_TOKEN", re.compile(r"(?<![\w-])gl(?:pat|ptt|dt|rt|cbt|oas|ft|imt|agent|soat)-[0-9A-Za-z_-]{20,}")),
    # Slack token types (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xapp-) and incoming-webhook URLs.
    ("SLACK_TOKEN", re.compile(r"(?<![\w-])(?:xox[abposr]|xapp)-[0-9A-Za-z-]{10,}")),
    ("SLACK_TOKEN", re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,}")),
    # Stripe secret and restricted keys (sk_live_, sk_test_, rk_live_, rk_test_) and webhook secrets (whsec_).
    ("STRIPE_KEY", re.compile(r"(?<![\w])(?:(?:sk|rk)_(?:live|test)|whsec)_[0-9A-Za-z]{16,}")),
    # OpenAI keys: sk-, sk-proj-, sk-svcacct-, sk-admin-; Anthropic sk-ant-.
    ("OPENAI_KEY", re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}T3BlbkFJ[A-Za-z0-9_-]{16,}")),
    ("OPENAI_KEY", re.compile(r"(?<![\w-])sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}")),
    ("API_KEY", re.compile(r"(?<![\w-])sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,}")),
    # RFC 7468 private-key blocks: whole (real or JSON-escaped newlines) or cut off before the END line.
    (
        "PRIVATE_KEY",
        re.compile(
            r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----.{0,16000}?"
            r"-----END[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----",
            re.DOTALL,
        ),
    ),
    (
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----(?:(?:\\[nr]|\s)+[A-Za-z0-9+/=]{16,}){0,400}"),
    ),
    # RFC 7519 JWTs: base64url header "." claims "." signature (eyJ = '{"').
    ("JWT", re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    # RFC 3986 userinfo: scheme://user:password@host.
    ("PASSWORD", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/]{1,64}:(?P<secret>[^\s@/]{1,128})@")),
    # key = value assignments in code and configuration; "my password is ..." in prose.
    (
        "PASSWORD",
        re.compile(
            rf"(?i:[\w.-]{{0,30}}{_KEYWORD}[\w.-]{{0,30}})[\"']?\s*(?:[:=]|:=|=>|\bis\b)\s*(?P<q>[\"']?)"
            r"(?P<secret>[^\s\"',;`]{6,200})(?P=q)"
        ),
    ),
    # A bare high-entropy token (a PEM body line alone, a key pasted on its own); look-alikes are filtered.
    ("SECRET", re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{32,}={0,2}(?![\w+/=-])")),
)
"""(type, pattern): a named group ``secret`` is the span found, else the whole match. Sources in the comments."""

_CANDIDATE = re.compile(
    r"(?<![\w+/=.-])(?=[\w+/=.-]*\d)(?=[\w+/=.-]*[A-Za-z])[\w+/=.-]{16,}|://|-----BEGIN"
    r"|(?i:pass(?:word|wd|phrase)?|pwd|secrets?|tokens?|[\w-]*keys?\s*[:=]|api[_-]?key|credentials?|auth\w*\s*[:=])"
)
"""What every detect-secrets plugin needs to find anything: a long token, a URL's userinfo, a PEM header or a
keyword. A text without one is not scanned (its ~5 ms per 100 words is the check's main cost)."""
_TEMPLATED = re.compile(r"^(?:\$\{.*\}|\$\w+|\{\{.*\}\}|%\(.*\)s?|<[^>]*>|\*+|x+|\.\.\.+|None|null|true|false)$", re.I)
_INDIRECT = re.compile(r"[()\[\]{}]|^(?:os\.|env\.|process\.env|getenv|self\.|config\.|settings\.)")
_AWS_KEY_ID = re.compile(r"^(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z2-7]{16}$")
_HEX = re.compile(r"^[0-9a-fA-F-]+$")
_INTEGRITY = re.compile(r"(?:sha(?:1|224|256|384|512)[-:=])$", re.I)
_INTEGRITY_VALUE = re.compile(r"^sha(?:1|224|256|384|512)[-:=]", re.I)


@dataclass(frozen=True, slots=True)
class _Span:
    type: str
    start: int
    end: int
    source: str
    """``detect-secrets`` or ``pattern`` (recorded as the finding's detail, never the value)."""


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _decodes_to_text(value: str) -> bool:
    """Base64 (standard or URL-safe) of readable text: a sentence encoded, not a key."""
    padded = value + "=" * (-len(value) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            decoded = decode(padded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(char.isprintable() or char.isspace() for char in decoded) / len(decoded) > 0.95:
            return True
    return False


def _looks_like_a_password(value: str) -> bool:
    """False for indirect values (``os.environ[...]``, ``get_secret(...)``) and plain words: "the password is
    incorrect" is prose, not a password."""
    if _INDIRECT.search(value):
        return False
    return any(not char.isalpha() for char in value) or (value != value.lower() and value != value.upper())


def _looks_like_a_secret(type_: str, value: str, text: str, start: int) -> bool:
    """False for look-alikes: templated/indirect values, hex digests, UUIDs, base64 of text, integrity digests."""
    value = value.strip("\"'`\\")
    if not value or PLACEHOLDER.fullmatch(value) or _TEMPLATED.match(value):
        return False
    if type_ == "PASSWORD":
        return _looks_like_a_password(value)
    if type_ not in ("SECRET", "AWS_SECRET_KEY"):
        return True
    if _INTEGRITY_VALUE.match(value) or _INTEGRITY.search(text[max(0, start - 8) : start]):
        return False  # a subresource-integrity or content digest (sha384-..., sha256:...)
    if _HEX.match(value) or _decodes_to_text(value):
        return False
    classes = sum(any(test(char) for char in value) for test in (str.isupper, str.islower, str.isdigit))
    return classes == 3 and _entropy(value) >= (4.0 if type_ == "SECRET" else 3.5)


def _scan_file(text: str) -> list[Any]:
    """detect-secrets' collection scanner over ``text`` as an anonymous in-memory file."""
    from detect_secrets.core.secrets_collection import SecretsCollection

    fd = os.memfd_create("guard-secrets-scan", os.MFD_CLOEXEC)
    try:
        os.write(fd, text.encode("utf-8", "surrogatepass"))
        collection = SecretsCollection()
        collection.scan_file(f"/proc/self/fd/{fd}")
        return [secret for _, secret in collection]
    finally:
        os.close(fd)


def _plugin_spans(text: str, found: list[Any]) -> Iterator[_Span]:
    """Locate each detect-secrets finding (a line number and value) in ``text``."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for secret in found:
        value = (secret.secret_value or "").rstrip("\\\"'")
        if not value:
            continue
        type_ = _PLUGIN_TYPES.get(secret.type, "API_KEY")
        if type_ == "AWS_ACCESS_KEY" and not _AWS_KEY_ID.match(value):
            type_ = "AWS_SECRET_KEY"  # the plugin reports the secret key under the key id's type
        line_index = secret.line_number - 1
        base = offsets[line_index] if 0 <= line_index < len(lines) else 0
        position = text.find(value, base)
        if position < 0:
            position = text.find(value)
        while position >= 0:
            if _looks_like_a_secret(type_, value, text, position):
                yield _Span(type_, position, position + len(value), "detect-secrets")
            position = text.find(value, position + len(value))


def _pattern_spans(text: str) -> Iterator[_Span]:
    for type_, pattern in PROVIDER_PATTERNS:
        for match in pattern.finditer(text):
            group = "secret" if "secret" in pattern.groupindex else 0
            start, end = match.span(group)
            if start < end and _looks_like_a_secret(type_, match.group(group), text, start):
                yield _Span(type_, start, end, "pattern")


def _joined(spans: list[_Span]) -> list[_Span]:
    """Overlapping spans become their union, typed by the most specific type among them."""
    rank = {type_: index for index, type_ in enumerate(SECRET_TYPES)}
    joined: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if joined and span.start < joined[-1].end:
            last = joined[-1]
            best = last if rank[last.type] <= rank[span.type] else span
            joined[-1] = _Span(best.type, last.start, max(last.end, span.end), best.source)
        else:
            joined.append(span)
    return joined


class SecretsCheck:
    """Finds credentials; redacts them with typed placeholders, or blocks or flags, as the policy says."""

    name: ClassVar[str] = "secrets"
    redacts: ClassVar[bool] = True  # its rewrite is a redaction: the stored copy masks every finding

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        self.description = (
            f"detect-secrets {self._version()} ({len(settings['plugins_used'])} plugins) + provider formats"
        )

    @staticmethod
    def _version() -> str:
        from detect_secrets.__version__ import VERSION

        return str(VERSION)

    @classmethod
    def load(cls) -> SecretsCheck:
        """detect-secrets' default plugins less :data:`_LEFT_OUT_PLUGINS`; a clear error if it is not installed."""
        try:
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        except ImportError:
            raise CheckUnavailable("detect-secrets is not installed: pip install detect-secrets") from None
        # detect-secrets logs the value it filters out at INFO ("Skipping <secret> due to ..."): its logger must stay
        # at ERROR (its own default) whatever the service's log level, so no secret reaches a log.
        logging.getLogger("detect-secrets").setLevel(logging.ERROR)
        classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
        names = {plugin.__name__ for plugin in classes}
        plugins = [{"name": name} for name in names - _LEFT_OUT_PLUGINS]
        return cls({"plugins_used": sorted(plugins, key=lambda p: p["name"])})

    def find(self, text: str) -> list[tuple[str, int, int, str]]:
        """(type, start, end, source) of every secret in ``text``, in text order (for tests and evaluation)."""
        return [(s.type, s.start, s.end, s.source) for s in self._spans(text, self._scan([text])[0])]

    def _scan(self, texts: Sequence[str]) -> list[list[Any]]:
        """detect-secrets over the texts that could hold what one of its plugins finds (most prose cannot)."""
        from detect_secrets.settings import transient_settings

        if not any(_CANDIDATE.search(text) for text in texts):
            return [[] for _ in texts]
        with transient_settings(self._settings) as settings:
            settings.disable_filters(*_LEFT_OUT_FILTERS)
            return [_scan_file(text) if _CANDIDATE.search(text) else [] for text in texts]

    @staticmethod
    def _spans(text: str, found: list[Any]) -> list[_Span]:
        protected = [m.span() for m in PLACEHOLDER.finditer(text)]
        spans = [
            span
            for span in [*_plugin_spans(text, found), *_pattern_spans(text)]
            if not any(span.start < end and span.end > start for start, end in protected)
        ]
        return _joined(spans)

    def run(self, items: Sequence[CheckItem]) -> list[CheckResult]:
        scanned = self._scan([item.text if self._config(item).enabled else "" for item in items])
        return [self._result(item, found) for item, found in zip(items, scanned, strict=True)]

    @staticmethod
    def _config(item: CheckItem) -> SecretsConfig:
        config: SecretsConfig = item.config
        return config

    def _result(self, item: CheckItem, found: list[Any]) -> CheckResult:
        config = self._config(item)
        if not item.text or not config.enabled:
            return CheckResult(text=item.text)
        findings: list[Finding] = []
        rewrites: list[Rewrite] = []
        for span in self._spans(item.text, found):
            action = config.action_for(span.type)
            if action == "allow":
                continue
            findings.append(
                Finding(
                    check=self.name,
                    type=span.type,
                    score=1.0,
                    threshold=1.0,
                    action=action,
                    start=span.start,
                    end=span.end,
                    stage=item.stage,
                    detail=span.source,
                )
            )
            if action == "redact":
                value = item.text[span.start : span.end]
                rewrites.append(Rewrite(start=span.start, end=span.end, text=item.scope.placeholder(span.type, value)))
        pieces: list[str] = []
        cursor = 0
        for rewrite in rewrites:
            pieces += [item.text[cursor : rewrite.start], rewrite.text]
            cursor = rewrite.end
        return CheckResult(
            findings=tuple(findings), text="".join([*pieces, item.text[cursor:]]), rewrites=tuple(rewrites)
        )
