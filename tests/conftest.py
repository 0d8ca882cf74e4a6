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
LAYERS = ("unit", "integration", "e2e")
"""The test layers: each is a folder of tests/ and the marker every test in it carries."""


def _layer_marked(item: pytest.Item) -> bool:
    """The test carries its folder's layer marker (any layer marker for a test outside the layer folders)."""
    try:
        folder = item.path.resolve().relative_to(ROOT / "tests").parts[0]
    except ValueError:
        folder = ""
    wanted = (folder,) if folder in LAYERS else LAYERS
    return any(item.get_closest_marker(layer) is not None for layer in wanted)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail collection when a test lacks its layer marker, so `-m unit` and friends select every test."""
    unmarked = sorted({item.nodeid.split("::")[0] for item in items if not _layer_marked(item)})
    if unmarked:
        raise pytest.UsageError(
            "tests without the marker of their folder (pytestmark = pytest.mark.unit | integration | e2e): "
            + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def guard_home() -> Path:
    """GUARD_HOME with up-to-date dev models (`guard models build-dev` is idempotent and fast when current)."""
    from guard.settings import Settings

    subprocess.run([str(Path(sys.executable).parent / "guard"), "models", "build-dev"], check=True)
    return Settings.from_env(profile="dev").home
