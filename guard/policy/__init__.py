"""Policies: pure data. The msgspec schema, the fail-closed loader and the registry of loaded versions."""

from __future__ import annotations

from guard.policy.loader import LoadedPolicy, PolicyError, load_policy_file
from guard.policy.registry import PolicyRegistry
from guard.policy.schema import (
    CLAUSES,
    Action,
    PiiConfig,
    PiiEntity,
    Policy,
    ProhibitedCategory,
    ProhibitedUseConfig,
    SecretsConfig,
    ToxicityConfig,
    ToxicityLabel,
    strongest,
)

__all__ = [
    "CLAUSES",
    "Action",
    "LoadedPolicy",
    "PiiConfig",
    "PiiEntity",
    "Policy",
    "PolicyError",
    "PolicyRegistry",
    "ProhibitedCategory",
    "ProhibitedUseConfig",
    "SecretsConfig",
    "ToxicityConfig",
    "ToxicityLabel",
    "load_policy_file",
    "strongest",
]
