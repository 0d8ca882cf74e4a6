"""How a decision shows in every answer (whole, streamed, scan): the ``guard`` object, the policy stamp, usage."""

from __future__ import annotations

import time
from typing import Any

from guard.api.schemas import GuardInfo, PolicyStamp, Usage
from guard.pipeline import ChatOutcome

__all__ = ["created_now", "guard_info", "stamp", "usage"]


def created_now() -> int:
    """OpenAI's ``created``: Unix seconds."""
    return int(time.time())


def stamp(outcome: Any) -> PolicyStamp:
    """The policy that decided (name, version, sha256)."""
    policy = outcome.policy
    return PolicyStamp(name=policy.name, version=policy.version, sha256=policy.sha256)


def guard_info(outcome: ChatOutcome) -> GuardInfo:
    return GuardInfo(
        decision_id=outcome.decision_id, decision=outcome.decision, policy=stamp(outcome), findings=outcome.findings
    )


def usage(outcome: ChatOutcome) -> Usage:
    return Usage(
        prompt_tokens=outcome.tokens_in,
        completion_tokens=outcome.tokens_out,
        total_tokens=outcome.tokens_in + outcome.tokens_out,
    )
