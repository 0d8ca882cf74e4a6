"""The one place offline evaluation reaches into the pipeline: load the service's models and run one policy section's
checks over texts exactly as the service runs them (same batchers, same order, same rewrites).

Golden cases (:mod:`guard.evaluation.golden`) and replay (:mod:`guard.evaluation.replay`) use only what is here, so
moving them onto another way of running checks changes this module alone. Nothing is audited: a run records nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard.audit import AuditWriter, SubjectHasher, create_engine
from guard.checks import Finding, RequestScope, Stage
from guard.pipeline import INPUT_CHECKS, NOT_STORED, OUTPUT_CHECKS, TEXT_NOT_KEPT, Models, Pipeline
from guard.pipeline import load_models as load_service_models
from guard.policy import PolicyRegistry
from guard.settings import Settings

__all__ = ["UNSTORED_TEXT", "CheckRunner", "Checked", "Models", "load_models"]

UNSTORED_TEXT: tuple[str, ...] = (NOT_STORED, TEXT_NOT_KEPT)
"""What an audit row holds instead of a text the active policy did not keep."""

_NOWHERE = "sqlite+aiosqlite://"
"""The runner's audit writer points at an in-memory database it never opens: it checks, it does not record."""


def load_models(settings: Settings) -> Models:
    """The service's models for the profile (the same checks, models and thresholds as a running gateway)."""
    return load_service_models(settings)


@dataclass(frozen=True, slots=True)
class Checked:
    """What one section's checks made of some texts."""

    texts: list[str]
    """The texts as the next step gets them (input: the model; output: the caller, before the vault)."""
    findings: list[Finding]


class CheckRunner:
    """Runs policy sections' checks over texts through the checks' micro-batchers: texts of concurrent runs are
    checked together. No check timeout: an offline run may queue many texts at once. ``close()`` when done."""

    def __init__(self, models: Models, policies: PolicyRegistry) -> None:
        # The subject hashes the checks compute are not looked at here: a throwaway key keeps them unlinkable.
        self._pipeline = Pipeline(
            policies,
            models,
            AuditWriter(create_engine(_NOWHERE)),
            SubjectHasher(os.urandom(32)),
            max_new_tokens=1,
        )

    async def run(
        self,
        stage: Stage,
        section: Any,
        texts: list[str],
        scope: RequestScope,
        *,
        roles: Sequence[str] | None = None,
        prompt: str | None = None,
    ) -> Checked:
        """The checks of ``section`` (a policy's input or output section) over ``texts`` of one request.

        ``roles`` (input only) gives each text's message role; ``prompt`` (output only) is the user turn the output
        answers. A check that fails raises the pipeline's ``ServiceUnavailable``, as the service would answer 503.
        """
        names = INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS
        checked = await self._pipeline.check_texts(
            names, section, texts, stage, scope, roles=None if roles is None else list(roles), prompt=prompt
        )
        return Checked(texts=checked.texts, findings=checked.findings)

    def close(self) -> None:
        """Stop the checks' worker threads."""
        self._pipeline.close()
