"""The store: the tables beside the audit log (scoped API keys, per-key rate limits, policy versions, reviewer sessions
and sign-ins), one module each.

It sits above :mod:`guard.audit` (a key change is recorded as an admin event in the same transaction) and never the
other way round.
"""

from __future__ import annotations

from guard.store.api_keys import (
    KEY_PREFIX,
    SCOPES,
    ApiKey,
    InvalidApiKeySpec,
    create_api_key,
    find_api_key,
    is_live_key,
    key_digest,
    list_api_keys,
    revoke_api_key,
)
from guard.store.policy_versions import PolicyVersionConflict, load_stored_policy, policy_text, record_policy_versions
from guard.store.rate_limits import Rate, RateDecision, RateLimiter, parse_rate
from guard.store.rate_limits_redis import RedisRateLimiter

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "InvalidApiKeySpec",
    "PolicyVersionConflict",
    "Rate",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "create_api_key",
    "find_api_key",
    "is_live_key",
    "key_digest",
    "list_api_keys",
    "load_stored_policy",
    "parse_rate",
    "policy_text",
    "record_policy_versions",
    "revoke_api_key",
]
