"""Shared test setup: the environment is set before guard or any model library is imported."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


@pytest.fixture(scope="session")
def guard_home() -> Path:
    """Where `guard models build-dev` put the dev models (built here if `make test` did not)."""
    from guard.settings import Settings

    home = Settings.from_env(profile="dev").home
    from guard.checks.devmodel import build_dev_toxicity
    from guard.engine.devmodel import build_dev_generator

    target = home / "dev-models"
    if not (target / "gemma-2" / "guard-dev.json").is_file():
        build_dev_generator(target / "gemma-2")
    if not (target / "toxicity" / "guard-dev.json").is_file():
        build_dev_toxicity(target / "toxicity")
    return home
