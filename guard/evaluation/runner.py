"""The one place offline evaluation reaches into the pipeline: load the checks (never the generator) and run one
policy section's checks over texts exactly as the service runs them (:class:`~guard.pipeline.CheckStage`: same
batchers, same order, same rewrites).

Golden cases (:mod:`guard.evaluation.golden`) and replay (:mod:`guard.evaluation.replay`) use only what is here.
Nothing is audited: a run records nothing, and no subject digests are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard.checks import CheckRegistry, Finding, RequestScope, Stage
from guard.models import load_check_models
from guard.pipeline import INPUT_CHECKS, NOT_STORED, OUTPUT_CHECKS, TEXT_NOT_KEPT, CheckStage
from guard.settings import Settings

__all__ = ["UNSTORED_TEXT", "CheckRunner", "Checked", "load_checks"]

UNSTORED_TEXT: tuple[str, ...] = (NOT_STORED, TEXT_NOT_KEPT)
"""What an audit row holds instead of a text the active policy did not keep."""


def load_checks(settings: Settings) -> CheckRegistry:
    """The service's checks for the profile (the same models and thresholds as a running gateway), no generator."""
    return load_check_models(settings)


@dataclass(frozen=True, slots=True)
class Checked:
    """What one section's checks made of some texts."""

    texts: list[str]
    """The texts as the next step gets them (input: the model; output: the caller, before the vault)."""
    findings: list[Finding]


class CheckRunner:
    """Runs policy sections' checks over texts through the checks' micro-batchers: texts of concurrent runs are
    checked together. No check timeout: an offline run may queue many texts at once. ``close()`` when done."""

    def __init__(self, checks: CheckRegistry) -> None:
        self._stage = CheckStage(checks, check_timeout_s=None)

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
        checked = await self._stage.run_section(
            INPUT_CHECKS if stage == "input" else OUTPUT_CHECKS,
            section,
            texts,
            stage,
            scope,
            None if roles is None else list(roles),
            prompt=prompt,
        )
        return Checked(texts=checked.texts, findings=checked.findings)

    def close(self) -> None:
        """Stop the checks' worker threads."""
        self._stage.close()
