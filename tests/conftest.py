"""Shared test setup: the environment is set before guard or any model library is imported."""

from __future__ import annotations

import os
import subprocess
import sys
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
    """GUARD_HOME with up-to-date dev models (`guard models build-dev` is idempotent and fast when current)."""
    from guard.settings import Settings

    subprocess.run([str(Path(sys.executable).parent / "guard"), "models", "build-dev"], check=True)
    return Settings.from_env(profile="dev").home
