"""Every dev model `guard models build-dev` builds into ``$GUARD_HOME/dev-models``, in build order."""

from __future__ import annotations

from guard.devmodels.generator import DEV_GENERATORS
from guard.devmodels.manifest import DevBuild, is_current
from guard.devmodels.toxicity import DEV_TOXICITY

__all__ = ["DEV_BUILDS", "DevBuild", "is_current"]

DEV_BUILDS: tuple[DevBuild, ...] = (*DEV_GENERATORS.values(), DEV_TOXICITY)
"""The generators (``gemma-2`` first: the default dev model), then the toxicity checkpoints."""
