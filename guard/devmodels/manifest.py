"""What a dev-model build is and the manifest it leaves behind.

Every build writes its manifest last (:func:`write_manifest`), so a directory holding one is completely built. The
file's name and its reader belong to :mod:`guard.models`: the runtime reads manifests there and never imports this
package.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.models import DEV_MANIFEST_NAME, read_dev_manifest

__all__ = ["DevBuild", "is_current", "write_manifest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DevBuild:
    """A dev model `guard models build-dev` builds into ``$GUARD_HOME/dev-models/<name>``."""

    name: str
    recipe: str
    """Identifies the recipe in the manifest; a build whose manifest names another recipe is rebuilt."""
    build: Callable[[Path], Path]
    description: str


def write_manifest(target: Path, manifest: dict[str, Any], started: float, what: str) -> None:
    """Write ``manifest`` into ``target`` (last: `guard models build-dev` treats a directory without it as not
    built) and log how long the build of ``what`` took since ``started`` (a ``time.perf_counter()``)."""
    (target / DEV_MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("%s built in %s in %.1f s", what, target, time.perf_counter() - started)


def is_current(directory: Path, recipe: str) -> bool:
    """Whether ``directory`` holds a complete build of ``recipe``."""
    manifest = read_dev_manifest(directory)
    return manifest is not None and manifest["recipe"] == recipe
