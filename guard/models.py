"""What the runtime loads: every model id in one place, the dev-model manifest reader and ``load_models()``.

Dev models are built by :mod:`guard.devmodels` (which no runtime module imports); the runtime only reads the
manifest each build leaves in its directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DEV_MANIFEST_NAME", "read_dev_manifest"]

DEV_MANIFEST_NAME = "guard-dev.json"
"""Written last by every dev-model build: a directory without it is not built."""


def read_dev_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of the dev-model build in ``directory``, or None when it is not (completely) built."""
    path = directory / DEV_MANIFEST_NAME
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest
