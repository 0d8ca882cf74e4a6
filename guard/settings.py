"""Typed settings read from ``GUARD_*`` environment variables, one frozen dataclass per concern.

Each setting is one line, ``name: Annotated[type, Env("GUARD_NAME")] = default``, with its docstring below it;
:meth:`Settings.from_env` reads every field from its variable, so a default is written once. An unset or blank
variable keeps the default. A value that does not parse (wrong type, unknown choice, a negative timeout, a key that is
not hex) raises :class:`SettingsError` naming the variable; a secret's value is never echoed. Choices are
case-insensitive.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum, StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

from guard.errors import GuardError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_GENERATOR",
    "ApiSettings",
    "Backend",
    "ConnectionSettings",
    "DatabaseSettings",
    "EngineSettings",
    "Env",
    "IntegrationSettings",
    "JudgeSettings",
    "KeySettings",
    "LocalEngineSettings",
    "ObservabilitySettings",
    "PolicySettings",
    "Profile",
    "RemoteEngineSettings",
    "Settings",
    "SettingsError",
]

DEFAULT_GENERATOR = "google/gemma-2-2b-it"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./guard.db"


class SettingsError(GuardError, ValueError):
    """A ``GUARD_*`` variable holds a value that cannot be used; the message names the variable."""


class Profile(StrEnum):
    """``dev`` runs on locally built dev models; ``production`` loads the real models or refuses to start."""

    DEV = "dev"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class Env:
    """Marks a settings field as read from the environment variable ``name``; ``dev`` replaces the default in the
    dev profile."""

    name: str
    dev: Any = None


Backend = Literal["local", "remote"]
LogFormat = Literal["json", "text"]
Seconds = Annotated[float, Meta(gt=0)]
"""A positive number of seconds."""
SecondsOrOff = Annotated[float, Meta(ge=0)]
"""A number of seconds, 0 for off."""
Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
HexKey = bytes
"""Key material given as hex in the variable (decoded when parsed)."""


@dataclass(frozen=True, slots=True)
class LocalEngineSettings:
    """How the in-process engine loads a model: the generator, and the judge with the same plan."""

    device: Annotated[str, Env("GUARD_DEVICE")] = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    dtype: Annotated[str, Env("GUARD_DTYPE")] = "auto"
    """``auto`` (bf16 on CUDA and on CPUs with bf16 units, else fp32), ``bfloat16``, ``float32``."""
    attn_implementation: Annotated[str, Env("GUARD_ATTN_IMPLEMENTATION")] = "eager"
    """Gemma-2 needs one that applies the softcap (eager, flash_attention_2, flex_attention); ``auto`` is
    flash_attention_2 on CUDA with flash-attn >= 2.6, else eager."""
    threads: Annotated[Count, Env("GUARD_THREADS")] = 0
    """torch intra-op threads; 0 means one per available core."""
    decode_threads: Annotated[Count, Env("GUARD_DECODE_THREADS")] = 0
    """CPU: torch threads for the decoder layers of a decode step (one token per row); the vocabulary projection and
    prefill keep ``threads``. 0 means ``threads``. Like llama.cpp's ``--threads`` beside ``--threads-batch``: with
    ``OMP_WAIT_POLICY=PASSIVE`` every multi-threaded op wakes its threads, which costs more than a small model's
    per-token layers gain (README, "Against llama.cpp")."""
    prefill_chunk: Annotated[Positive, Env("GUARD_PREFILL_CHUNK")] = 1024
    """Prompt tokens prefilled per step, so long prompts don't stall running streams."""
    quantization: Annotated[str, Env("GUARD_QUANTIZATION")] = "none"
    """``none``; ``8bit``/``4bit`` (bitsandbytes nf4; CUDA, ``guard[gpu]``); ``int8`` (CPU: PyTorch's quantized linear;
    CUDA: torchao, ``guard[quant]``)."""
    device_map: Annotated[str | None, Env("GUARD_DEVICE_MAP")] = None
    """e.g. ``auto`` to spread one model over several GPUs (CUDA only, ``guard[gpu]``)."""
    compile: Annotated[bool, Env("GUARD_COMPILE")] = False
    """``1`` compiles the model forward with torch.compile (slower start, faster decode)."""


@dataclass(frozen=True, slots=True)
class RemoteEngineSettings:
    """The upstream of ``GUARD_ENGINE=remote`` (guard still renders and tokenizes locally, see
    :mod:`guard.engine.remote`)."""

    url: Annotated[str | None, Env("GUARD_ENGINE_URL")] = None
    """The remote engine's base URL, e.g. ``http://vllm:8000`` (``/v1/completions`` is added)."""
    model: Annotated[str | None, Env("GUARD_ENGINE_REMOTE_MODEL")] = None
    """The model name sent upstream; default: the generator (``GUARD_MODEL``)."""
    timeout_s: Annotated[Seconds, Env("GUARD_ENGINE_TIMEOUT_S")] = 60.0
    """Connect/read timeout per upstream call (read: between streamed chunks)."""
    retries: Annotated[Count, Env("GUARD_ENGINE_RETRIES")] = 2
    """Retries (exponential backoff) when the upstream cannot be connected to."""
    breaker_threshold: Annotated[Positive, Env("GUARD_ENGINE_BREAKER_THRESHOLD")] = 5
    """Consecutive failed connections that open the circuit breaker."""
    breaker_cooldown_s: Annotated[Seconds, Env("GUARD_ENGINE_BREAKER_COOLDOWN_S")] = 10.0
    """How long an open breaker fails requests fast before a trial request."""


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """The prohibited-use judge layer's model (loaded locally with :class:`LocalEngineSettings`)."""

    model: Annotated[str | None, Env("GUARD_JUDGE_MODEL")] = None
    """A ShieldGemma model (e.g. ``google/shieldgemma-2b``); unset = no judge."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The generator: which backend runs it and the limits both backends keep."""

    backend: Annotated[Backend, Env("GUARD_ENGINE")] = "local"
    """``local`` (in-process transformers) or ``remote`` (an OpenAI-compatible server at ``GUARD_ENGINE_URL``)."""
    model: Annotated[str | None, Env("GUARD_MODEL")] = None
    """A hub id or a local path; overrides the generator in every profile."""
    max_batch_size: Annotated[Positive, Env("GUARD_MAX_BATCH_SIZE")] = 32
    """Most sequences generating together (slots in the running batch; concurrent upstream calls when remote)."""
    max_queue: Annotated[Count, Env("GUARD_MAX_QUEUE")] = 64
    """Most requests waiting for a slot; beyond it requests get 429 with Retry-After."""
    max_new_tokens: Annotated[Positive, Env("GUARD_MAX_NEW_TOKENS")] = 512
    """The ceiling for a request's max_tokens."""
    local: LocalEngineSettings = field(default_factory=LocalEngineSettings)
    remote: RemoteEngineSettings = field(default_factory=RemoteEngineSettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: Annotated[str, Env("GUARD_DATABASE_URL")] = DEFAULT_DATABASE_URL
    """SQLAlchemy async URL (SQLite by default, ``postgresql+asyncpg://`` in production)."""
    redis_url: Annotated[str | None, Env("GUARD_REDIS_URL")] = None
    """Count per-key rate limits in Redis (``redis://host:6379/0``) instead of the database."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    directory: Annotated[Path, Env("GUARD_POLICY_DIR")] = Path("policies")
    """The folder of policy YAML files."""
    default: Annotated[str, Env("GUARD_DEFAULT_POLICY")] = "default"
    """The policy applied when a request names none."""
    poll_s: Annotated[SecondsOrOff, Env("GUARD_POLICY_POLL_S")] = 0.0
    """Reload when the directory's content changes, checked this often (0 = off)."""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    api_key: Annotated[str | None, Env("GUARD_API_KEY")] = field(default=None, repr=False)
    """The bootstrap key with every scope (the dev profile makes one when unset)."""
    max_body_bytes: Annotated[Positive, Env("GUARD_MAX_BODY_BYTES")] = 64 * 1024
    """Larger request bodies get a 413."""
    check_timeout_s: Annotated[Seconds, Env("GUARD_CHECK_TIMEOUT_S")] = 10.0
    """The longest one check call may take; past it the request fails closed (503)."""
    request_timeout_s: Annotated[Seconds, Env("GUARD_REQUEST_TIMEOUT_S")] = 120.0
    """Bounds a whole unstreamed request (a stream: until its response starts); past it 503, audited, and the
    generation is cancelled."""
    shutdown_timeout_s: Annotated[Count, Env("GUARD_SHUTDOWN_TIMEOUT_S")] = 30
    """On SIGTERM, how long in-flight requests (streams too) may take to finish before they are cancelled and the
    app shuts down."""
    sign_in_rate: Annotated[str, Env("GUARD_SIGN_IN_RATE")] = "5/minute"
    """Failed reviewer-page sign-ins allowed per client address and window (e.g. ``5/minute``); beyond, 429."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Limits ``guard serve`` holds per connection (uvicorn has no header, body or send timeout of its own)."""

    max_connections: Annotated[Positive, Env("GUARD_MAX_CONNECTIONS")] = 2048
    """Open connections; beyond it the longest-idle one is closed, or with none idle the request gets a JSON 503."""
    header_timeout_s: Annotated[Seconds, Env("GUARD_HEADER_TIMEOUT_S")] = 10.0
    """From a connection's start (or a request's first byte) to its complete headers; past it 408 and closed."""
    body_timeout_s: Annotated[Seconds, Env("GUARD_BODY_TIMEOUT_S")] = 30.0
    """From a request's headers to the end of its body; past it 408 and closed."""
    keep_alive_timeout_s: Annotated[Positive, Env("GUARD_KEEP_ALIVE_TIMEOUT_S")] = 5
    """An idle keep-alive connection is closed after this long."""
    send_timeout_s: Annotated[Seconds, Env("GUARD_SEND_TIMEOUT_S")] = 30.0
    """A client that leaves its send buffer full this long is cut (a stream's generation cancelled, audited)."""
    send_buffer_bytes: Annotated[Positive, Env("GUARD_SEND_BUFFER_BYTES")] = 64 * 1024
    """Per connection: the server's write buffer high-water mark and the socket's send buffer (SO_SNDBUF)."""


@dataclass(frozen=True, slots=True)
class IntegrationSettings:
    """How the routes for other gateways' protocols (LiteLLM's guardrail API, LLM Guard's API) choose a policy."""

    litellm_callers: Annotated[Path | None, Env("GUARD_LITELLM_CALLERS")] = None
    """A YAML file mapping LiteLLM callers (virtual key, team, user, org, guardrail params) to a policy and tenant;
    unset, a call runs its guardrail's ``policy`` param or the key's policy."""
    llm_guard_policy: Annotated[str | None, Env("GUARD_LLM_GUARD_POLICY")] = None
    """The policy the LLM Guard-compatible routes run (unset: the key's policy, else the default)."""


@dataclass(frozen=True, slots=True)
class KeySettings:
    """Key material kept out of the database; an unset key lives in a 0600 file in ``GUARD_HOME`` (made when first
    used)."""

    audit_hmac: Annotated[HexKey | None, Env("GUARD_AUDIT_HMAC_KEY")] = field(default=None, repr=False)
    """Hex HMAC key of the audit's subject digests (else ``$GUARD_HOME/audit-hmac.key``)."""
    pii_hmac: Annotated[HexKey | None, Env("GUARD_PII_HMAC_KEY")] = field(default=None, repr=False)
    """Hex HMAC key of the PII ``hash`` action (else ``$GUARD_HOME/pii-hmac.key``)."""
    audit_signing_key: Annotated[Path | None, Env("GUARD_AUDIT_SIGNING_KEY")] = None
    """The Ed25519 PEM file that signs audit checkpoints (else ``$GUARD_HOME/audit-signing.key``)."""


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    log_format: Annotated[LogFormat, Env("GUARD_LOG_FORMAT", dev="text")] = "json"
    """``json`` (one object per line; the production default) or ``text`` (the dev default)."""
    otel: Annotated[bool, Env("GUARD_OTEL")] = False
    """``1`` traces requests with OpenTelemetry (needs the ``guard[otel]`` extra)."""


def _default_home() -> Path:
    return Path.home() / ".cache" / "guard"


@dataclass(frozen=True, slots=True)
class Settings:
    profile: Annotated[Profile, Env("GUARD_PROFILE")] = Profile.PRODUCTION
    """``dev`` or ``production``."""
    home: Annotated[Path, Env("GUARD_HOME")] = field(default_factory=_default_home)
    """Where dev models, the dev API key and the key files live."""
    engine: EngineSettings = field(default_factory=EngineSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    integrations: IntegrationSettings = field(default_factory=IntegrationSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    @property
    def dev_models_dir(self) -> Path:
        return self.home / "dev-models"

    @classmethod
    def from_env(cls, *, profile: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment); ``profile`` overrides
        ``GUARD_PROFILE``. Raises :class:`SettingsError` on the first value that cannot be used."""
        source = dict(os.environ if environ is None else environ)
        if profile:
            source["GUARD_PROFILE"] = profile
        dev = _read(cls, source, dev=False, only="profile").profile is Profile.DEV
        return _read(cls, source, dev=dev)


_T = TypeVar("_T")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _read(cls: type[_T], environ: Mapping[str, str], *, dev: bool, only: str | None = None) -> _T:
    """``cls`` with every field (or just ``only``) read from its variable; nested settings groups recursively."""
    hints = get_type_hints(cls, include_extras=True)
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        hint = hints[item.name]
        if only is not None and item.name != only:
            continue
        if is_dataclass(hint):
            values[item.name] = _read(hint, environ, dev=dev)  # type: ignore[arg-type]
            continue
        env = next(meta for meta in get_args(hint) if isinstance(meta, Env))
        raw = environ.get(env.name, "").strip()
        if raw:
            values[item.name] = _parse(env.name, raw, hint, secret=not item.repr)
        elif dev and env.dev is not None:
            values[item.name] = env.dev
    return cls(**values)


def _parse(name: str, raw: str, hint: Any, *, secret: bool) -> Any:
    kind, *metadata = get_args(hint)
    constraints = [meta for meta in metadata if isinstance(meta, Meta)]
    if get_origin(kind) in (Union, UnionType):  # ``X | None``: the variable is set, so it is an X
        kind = next(arg for arg in get_args(kind) if arg is not NoneType)
    shown = name if secret else f"{name}={raw!r}"
    choices = get_args(kind) if get_origin(kind) is Literal else [m.value for m in kind] if _is_enum(kind) else None
    if choices is not None:
        if raw.lower() not in choices:
            raise SettingsError(f"{shown}: use one of {', '.join(choices)}")
        return kind(raw.lower()) if _is_enum(kind) else raw.lower()
    if kind is bool:
        if raw.lower() not in _TRUE + _FALSE:
            raise SettingsError(f"{shown}: use 0 or 1")
        return raw.lower() in _TRUE
    if kind is Path:
        return Path(raw).expanduser()
    if kind is bytes:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            raise SettingsError(f"{name}: not a hex string") from None
    try:
        return msgspec.convert(raw, Annotated[kind, *constraints] if constraints else kind, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{shown}: {str(exc)[:1].lower()}{str(exc)[1:]}") from None


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Enum)
