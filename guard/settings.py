"""Typed settings read from ``GUARD_*`` environment variables, one dataclass per concern."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_GENERATOR",
    "ApiSettings",
    "DatabaseSettings",
    "EngineSettings",
    "ObservabilitySettings",
    "PolicySettings",
    "Profile",
    "Settings",
]

DEFAULT_GENERATOR = "google/gemma-2-2b-it"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./guard.db"


class Profile(StrEnum):
    """``dev`` runs on locally built dev models; ``production`` loads the real models or refuses to start."""

    DEV = "dev"
    PRODUCTION = "production"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    value = float(_env(name, str(default)))
    if not value > 0:  # also refuses nan
        raise ValueError(f"{name}={value!r}: use a positive number of seconds")
    return value


def _env_float_or_off(name: str) -> float:
    """A number of seconds, or 0 (the default) for off."""
    value = float(_env(name, "0"))
    if not value >= 0:  # also refuses nan
        raise ValueError(f"{name}={value!r}: use 0 (off) or a positive number of seconds")
    return value


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name, "1" if default else "0").lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"{name}={value!r}: use 0 or 1")
    return value in ("1", "true", "yes")


@dataclass(frozen=True, slots=True)
class EngineSettings:
    model: str | None = None
    """``GUARD_MODEL``: a hub id or a local path; overrides the generator in every profile."""
    device: str = "auto"
    """``GUARD_DEVICE``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    dtype: str = "auto"
    """``GUARD_DTYPE``: ``auto`` (bf16 on CUDA and on CPUs with bf16 units, else fp32), ``bfloat16``, ``float32``."""
    attn_implementation: str = "eager"
    """``GUARD_ATTN_IMPLEMENTATION``: Gemma-2 needs one that applies the softcap (eager, flash_attention_2,
    flex_attention); ``auto`` is flash_attention_2 on CUDA with flash-attn >= 2.6, else eager."""
    threads: int = 0
    """``GUARD_THREADS``: torch intra-op threads; 0 means one per available core."""
    max_batch_size: int = 32
    """``GUARD_MAX_BATCH_SIZE``: most sequences decoding together (slots in the running batch)."""
    max_queue: int = 64
    """``GUARD_MAX_QUEUE``: most requests waiting for a slot; beyond it requests get 429 with Retry-After."""
    prefill_chunk: int = 1024
    """``GUARD_PREFILL_CHUNK``: prompt tokens prefilled per step, so long prompts don't stall running streams."""
    max_new_tokens: int = 512
    """``GUARD_MAX_NEW_TOKENS``: the ceiling for a request's max_tokens."""
    quantization: str = "none"
    """``GUARD_QUANTIZATION``: ``none``, ``8bit`` or ``4bit`` (bitsandbytes nf4; CUDA only, ``guard[gpu]``)."""
    device_map: str | None = None
    """``GUARD_DEVICE_MAP``: e.g. ``auto`` to spread one model over several GPUs (CUDA only, ``guard[gpu]``)."""
    compile: bool = False
    """``GUARD_COMPILE``: ``1`` compiles the model forward with torch.compile (slower start, faster decode)."""
    backend: str = "local"
    """``GUARD_ENGINE``: ``local`` (in-process transformers) or ``remote`` (an OpenAI-compatible server at
    ``GUARD_ENGINE_URL``; guard still renders and tokenizes locally, see :mod:`guard.engine.remote`)."""
    url: str | None = None
    """``GUARD_ENGINE_URL``: the remote engine's base URL, e.g. ``http://vllm:8000`` (``/v1/completions`` is added)."""
    remote_model: str | None = None
    """``GUARD_ENGINE_REMOTE_MODEL``: the model name sent upstream; default: the generator (``GUARD_MODEL``)."""
    timeout_s: float = 60.0
    """``GUARD_ENGINE_TIMEOUT_S``: connect/read timeout per upstream call (read: between streamed chunks)."""
    retries: int = 2
    """``GUARD_ENGINE_RETRIES``: retries (exponential backoff) when the upstream cannot be connected to."""
    breaker_threshold: int = 5
    """``GUARD_ENGINE_BREAKER_THRESHOLD``: consecutive failed connections that open the circuit breaker."""
    breaker_cooldown_s: float = 10.0
    """``GUARD_ENGINE_BREAKER_COOLDOWN_S``: how long an open breaker fails requests fast before a trial request."""
    judge_model: str | None = None
    """``GUARD_JUDGE_MODEL``: a ShieldGemma model (e.g. ``google/shieldgemma-2b``) for the prohibited-use judge
    layer, loaded with the same device/dtype/attention plan as the generator; unset = no judge."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = DEFAULT_DATABASE_URL
    """``GUARD_DATABASE_URL``: SQLAlchemy async URL (SQLite by default, ``postgresql+asyncpg://`` in production)."""
    redis_url: str | None = None
    """``GUARD_REDIS_URL``: count per-key rate limits in Redis (``redis://host:6379/0``) instead of the database."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    directory: Path = Path("policies")
    """``GUARD_POLICY_DIR``: the folder of policy YAML files."""
    default: str = "default"
    """``GUARD_DEFAULT_POLICY``: the policy applied when a request names none."""
    poll_s: float = 0.0
    """``GUARD_POLICY_POLL_S``: reload when the directory's content changes, checked this often (0 = off)."""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    api_key: str | None = None
    """``GUARD_API_KEY``: the bootstrap key with every scope (the dev profile makes one when unset)."""
    max_body_bytes: int = 64 * 1024
    """``GUARD_MAX_BODY_BYTES``: larger request bodies get a 413."""
    check_timeout_s: float = 10.0
    """``GUARD_CHECK_TIMEOUT_S``: the longest one check call may take; past it the request fails closed (503)."""
    request_timeout_s: float = 120.0
    """``GUARD_REQUEST_TIMEOUT_S``: bounds a whole unstreamed request (a stream: until its response starts);
    past it 503, audited, and the generation is cancelled."""
    shutdown_timeout_s: int = 30
    """``GUARD_SHUTDOWN_TIMEOUT_S``: on SIGTERM, how long in-flight requests (streams too) may take to finish
    before they are cancelled and the app shuts down."""


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    log_format: str = "json"
    """``GUARD_LOG_FORMAT``: ``json`` (one object per line; the production default) or ``text`` (the dev default)."""
    otel: bool = False
    """``GUARD_OTEL``: ``1`` traces requests with OpenTelemetry (needs the ``guard[otel]`` extra)."""


@dataclass(frozen=True, slots=True)
class Settings:
    profile: Profile = Profile.PRODUCTION
    """``GUARD_PROFILE``: ``dev`` or ``production``."""
    home: Path = field(default_factory=lambda: Path.home() / ".cache" / "guard")
    """``GUARD_HOME``: where dev models and the dev API key live."""
    engine: EngineSettings = field(default_factory=EngineSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    @property
    def dev_models_dir(self) -> Path:
        return self.home / "dev-models"

    @classmethod
    def from_env(cls, *, profile: str | None = None) -> Settings:
        """Read every setting from the environment; ``profile`` overrides ``GUARD_PROFILE``."""
        home = Path(_env("GUARD_HOME", str(Path.home() / ".cache" / "guard"))).expanduser()
        chosen = Profile(profile or _env("GUARD_PROFILE", Profile.PRODUCTION.value))
        log_format = _env("GUARD_LOG_FORMAT", "text" if chosen is Profile.DEV else "json").lower()
        if log_format not in ("json", "text"):
            raise ValueError(f"GUARD_LOG_FORMAT={log_format!r}: use json or text")
        return cls(
            profile=chosen,
            home=home,
            engine=EngineSettings(
                model=os.environ.get("GUARD_MODEL") or None,
                device=_env("GUARD_DEVICE", "auto"),
                dtype=_env("GUARD_DTYPE", "auto"),
                attn_implementation=_env("GUARD_ATTN_IMPLEMENTATION", "eager"),
                threads=_env_int("GUARD_THREADS", 0),
                max_batch_size=_env_int("GUARD_MAX_BATCH_SIZE", 32),
                max_queue=_env_int("GUARD_MAX_QUEUE", 64),
                prefill_chunk=_env_int("GUARD_PREFILL_CHUNK", 1024),
                max_new_tokens=_env_int("GUARD_MAX_NEW_TOKENS", 512),
                quantization=_env("GUARD_QUANTIZATION", "none"),
                device_map=os.environ.get("GUARD_DEVICE_MAP") or None,
                compile=_env_bool("GUARD_COMPILE", False),
                judge_model=os.environ.get("GUARD_JUDGE_MODEL") or None,
                backend=_env("GUARD_ENGINE", "local"),
                url=os.environ.get("GUARD_ENGINE_URL") or None,
                remote_model=os.environ.get("GUARD_ENGINE_REMOTE_MODEL") or None,
                timeout_s=_env_float("GUARD_ENGINE_TIMEOUT_S", 60.0),
                retries=_env_int("GUARD_ENGINE_RETRIES", 2),
                breaker_threshold=_env_int("GUARD_ENGINE_BREAKER_THRESHOLD", 5),
                breaker_cooldown_s=_env_float("GUARD_ENGINE_BREAKER_COOLDOWN_S", 10.0),
            ),
            database=DatabaseSettings(
                url=_env("GUARD_DATABASE_URL", DEFAULT_DATABASE_URL), redis_url=_env("GUARD_REDIS_URL", "") or None
            ),
            policy=PolicySettings(
                directory=Path(_env("GUARD_POLICY_DIR", "policies")),
                default=_env("GUARD_DEFAULT_POLICY", "default"),
                poll_s=_env_float_or_off("GUARD_POLICY_POLL_S"),
            ),
            api=ApiSettings(
                api_key=os.environ.get("GUARD_API_KEY") or None,
                max_body_bytes=_env_int("GUARD_MAX_BODY_BYTES", 64 * 1024),
                check_timeout_s=_env_float("GUARD_CHECK_TIMEOUT_S", 10.0),
                request_timeout_s=_env_float("GUARD_REQUEST_TIMEOUT_S", 120.0),
                shutdown_timeout_s=_env_int("GUARD_SHUTDOWN_TIMEOUT_S", 30),
            ),
            observability=ObservabilitySettings(log_format=log_format, otel=_env_bool("GUARD_OTEL", False)),
        )
