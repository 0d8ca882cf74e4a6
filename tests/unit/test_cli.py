"""The ``guard`` command's modules: registered at import, light enough that ``guard --help`` loads no model library."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from guard.cli import main

pytestmark = pytest.mark.unit

HEAVY = (
    "torch",
    "transformers",
    "uvicorn",
    "spacy",
    "presidio_analyzer",
    "detoxify",
    "guard.checks",
    "guard.devmodels",
)


def test_every_command_group_is_registered() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "models", "eval", "policy", "keys", "audit"):
        assert f"  {command} " in result.output


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = f"import sys, guard.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
