"""CheckRegistry.validate: whether a policy's layers can run with the loaded checks (startup, reload, replay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guard.checks import CheckUnavailable
from guard.checks.prohibited import JUDGE_MISSING, ProhibitedUseCheck
from guard.checks.registry import CheckRegistry, PolicyCannotRun
from guard.checks.toxicity import ToxicityCheck
from guard.errors import GuardError
from guard.policy import LoadedPolicy, load_policy_file

pytestmark = pytest.mark.unit

HEADER = 'version: "1"\nrefusal_message: No.\n'
JUDGED = "input:\n  prohibited_use:\n    categories:\n      weapons:\n        judge: 0.5\n"
ROUTED = "output:\n  toxicity:\n    languages: {ja: multilingual}\n    thresholds: {toxicity: 0.8}\n"


def _policy(tmp_path: Path, name: str, body: str) -> LoadedPolicy:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{HEADER}{body}", encoding="utf-8")
    return load_policy_file(path)


def _registry(loaded: list[str]) -> CheckRegistry:
    def load(variant: str) -> Any:
        if variant not in loaded:
            raise CheckUnavailable(f"no {variant!r} checkpoint here")
        return object()

    return CheckRegistry([ProhibitedUseCheck(), ToxicityCheck(load, "fake")], {})


def test_a_policy_whose_layers_can_run_passes(tmp_path: Path) -> None:
    _registry(["original", "multilingual"]).validate(_policy(tmp_path, "routed", ROUTED))


def test_a_required_judge_without_a_judge_model_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(PolicyCannotRun) as caught:
        _registry(["original"]).validate(_policy(tmp_path, "judged", JUDGED))
    assert caught.value.reason == JUDGE_MISSING
    assert str(caught.value) == f"policy 'judged': {JUDGE_MISSING}"
    assert isinstance(caught.value, CheckUnavailable)
    assert isinstance(caught.value, GuardError)


def test_a_toxicity_variant_that_cannot_load_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyCannotRun, match=r"^policy 'routed': no 'multilingual' checkpoint here$"):
        _registry(["original"]).validate(_policy(tmp_path, "routed", ROUTED))
