"""What the runtime loads: every model id in one place, the dev-model manifest reader and the loaders.

:func:`load_models` loads the generator and the checks for the profile (the service); :func:`load_check_models`
loads the checks only, never the generator (offline tools: ``guard eval``, ``guard policy test``, replay).

Model ids, read here whatever module uses them (the checks and the engine get them passed down; those defined
there are re-exported):

- generator: :data:`DEFAULT_GENERATOR` (production; ``GUARD_MODEL`` overrides it), :data:`DEV_MODEL_ID` (the id the
  dev Gemma-2 answers to); the prohibited-use judge comes from ``GUARD_JUDGE_MODEL`` (e.g. google/shieldgemma-2b);
- PII: :data:`PRODUCTION_SPACY_MODEL`, :data:`DEV_SPACY_MODEL` (presidio's spaCy NER model);
- toxicity: :data:`PRODUCTION_CHECKPOINTS` (detoxify's weights per variant) on :data:`HF_BASE_MODELS`; the dev
  profile loads the checkpoints its manifest lists (:func:`dev_toxicity_checkpoints`);
- prohibited use: :data:`ENCODER_NAME` with fine-tuned top layers and heads shipped in policies/prohibited/.

Dev models are built by :mod:`guard.devmodels` (which no runtime module imports); the runtime only reads the
manifest each build leaves in its directory, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.audit import load_or_create_key
from guard.checks import CheckModels, CheckRegistry
from guard.checks.pii import DEV_SPACY_MODEL, PRODUCTION_SPACY_MODEL
from guard.checks.semantic import ENCODER_NAME
from guard.checks.toxicity import HF_BASE_MODELS, PRODUCTION_CHECKPOINTS
from guard.engine import Engine, GemmaEngine, RemoteEngine, ShieldGemmaScorer
from guard.hardware import cpu_has_bf16
from guard.policy import PolicyRegistry
from guard.settings import DEFAULT_GENERATOR, Profile, Settings

__all__ = [
    "DEFAULT_GENERATOR",
    "DEV_GENERATOR",
    "DEV_MANIFEST_NAME",
    "DEV_MODEL_ID",
    "DEV_SPACY_MODEL",
    "DEV_TOXICITY",
    "ENCODER_NAME",
    "HF_BASE_MODELS",
    "PRODUCTION_CHECKPOINTS",
    "PRODUCTION_SPACY_MODEL",
    "Models",
    "dev_model_dir",
    "dev_toxicity_bf16",
    "dev_toxicity_checkpoints",
    "load_check_models",
    "load_models",
    "read_dev_manifest",
]

DEV_MANIFEST_NAME = "guard-dev.json"
"""Written last by every dev-model build: a directory without it is not built."""
DEV_MODEL_ID = "guard-dev/tiny-gemma-2"
"""The model id the dev Gemma-2 answers to (``GET /v1/models``)."""
DEV_GENERATOR = "gemma-2"
"""The dev generator's build directory under ``GUARD_HOME/dev-models``."""
DEV_TOXICITY = "toxicity"
"""The dev toxicity checkpoints' build directory under ``GUARD_HOME/dev-models``."""


@dataclass(frozen=True, slots=True)
class Models:
    """Everything loaded once at startup."""

    checks: CheckRegistry
    engine: Engine
    dev_models: list[str]
    """What is a dev model, in words (for /readyz and the startup log); empty in production."""


def read_dev_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of the dev-model build in ``directory``, or None when it is not (completely) built."""
    path = directory / DEV_MANIFEST_NAME
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def dev_model_dir(settings: Settings, name: str) -> Path:
    """The build directory of dev model ``name``, or :class:`FileNotFoundError` saying how to build it."""
    path = settings.dev_models_dir / name
    if read_dev_manifest(path) is None:
        raise FileNotFoundError(f"dev model {name!r} not built in {path}: run `guard models build-dev`")
    return path


def dev_toxicity_bf16(directory: Path) -> frozenset[str]:
    """The dev toxicity variants the build's manifest in ``directory`` marks to run in bfloat16 (``bf16_variants``),
    on CPUs with native bf16 only: elsewhere (AVX2) bf16 is emulated and MiniLM ran ~6x slower than in float32."""
    manifest = read_dev_manifest(directory) or {}
    return frozenset(manifest.get("bf16_variants", ())) if cpu_has_bf16() else frozenset()


def dev_toxicity_checkpoints(directory: Path) -> dict[str, Path]:
    """Each detoxify variant's dev checkpoint, as the build's manifest in ``directory`` lists them (``variants``)."""
    manifest = read_dev_manifest(directory) or {}
    return {variant: directory / relative for variant, relative in manifest.get("variants", {}).items()}


def load_check_models(settings: Settings) -> CheckRegistry:
    """The checks for the profile, without the generator; raises with what is missing and how to fix it."""
    return _load_checks(settings)[0]


def load_models(settings: Settings) -> Models:
    """Load the check models and the generator for the profile, or raise with what is missing and how to fix it."""
    checks, dev_models = _load_checks(settings)
    dev = settings.profile is Profile.DEV
    generator = settings.engine.model
    if generator is None:
        generator = str(dev_model_dir(settings, DEV_GENERATOR)) if dev else DEFAULT_GENERATOR
    generator_is_dev = dev and settings.engine.model is None
    if generator_is_dev:
        dev_models.insert(0, f"generator: tiny Gemma-2 dev model {generator}")
    model_id = DEV_MODEL_ID if generator_is_dev else None
    engine: Engine
    if settings.engine.backend == "remote":  # only the tokenizer loads here; generation runs upstream
        engine = RemoteEngine.load(generator, settings.engine, is_dev=generator_is_dev, model_id=model_id)
    else:
        engine = GemmaEngine.load(generator, settings.engine, is_dev=generator_is_dev, model_id=model_id)
    return Models(checks=checks, engine=engine, dev_models=dev_models)


def _load_checks(settings: Settings) -> tuple[CheckRegistry, list[str]]:
    """The checks, and the dev models among them in words."""
    dev_models: list[str] = []
    toxicity: dict[str, Path] | None = None
    bf16: frozenset[str] = frozenset()
    if settings.profile is Profile.DEV:
        spacy_model = DEV_SPACY_MODEL
        directory = dev_model_dir(settings, DEV_TOXICITY)
        toxicity = dev_toxicity_checkpoints(directory)
        bf16 = dev_toxicity_bf16(directory)
        original = toxicity.get("original", directory)
        dev_models += [f"toxicity: detoxify dev checkpoint {original}", f"pii: spaCy {spacy_model}"]
    else:
        spacy_model = PRODUCTION_SPACY_MODEL
    policies = PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).all()
    checks = CheckRegistry.load(
        CheckModels(
            spacy_model=spacy_model,
            toxicity_checkpoints=toxicity,
            toxicity_bf16=bf16,
            # Load every detoxify variant a policy routes to now, not on a request's path.
            toxicity_variants=tuple(
                sorted({v for p in policies if p.policy.output.toxicity for v in p.policy.output.toxicity.variants()})
            ),
            pii_hash_key=load_or_create_key(settings.home / "pii-hmac.key", settings.keys.pii_hmac),
            judge=ShieldGemmaScorer.load(settings.engine.judge.model, settings.engine.local)
            if settings.engine.judge.model
            else None,
        )
    )
    for loaded in policies:  # a policy whose layers cannot run (e.g. a judge without a judge model) fails startup
        checks.validate(loaded)
    return checks, dev_models
