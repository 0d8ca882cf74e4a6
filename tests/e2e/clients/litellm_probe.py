"""Run with the LiteLLM virtualenv's Python (its pins conflict with guard's): BASE_URL API_KEY MODEL_ID.

Prints one JSON line: which exception the LiteLLM SDK raised for a prompt beyond guard's context, what a Router's
``context_window_fallbacks`` answered for the same request, and a plain answer through the SDK with guard's decision
id as LiteLLM surfaces it."""

from __future__ import annotations

import json
import sys

import litellm

base, key, model = sys.argv[1:4]
target = {"model": f"openai/{model}", "api_base": base, "api_key": key}
too_long = [{"role": "user", "content": "word " * 900}]
report: dict[str, str] = {}
try:
    litellm.completion(messages=too_long, max_tokens=200, num_retries=0, **target)
    report["direct"] = "no error"
except Exception as exc:  # which one is the point
    report["direct"] = type(exc).__name__
router = litellm.Router(
    model_list=[
        {"model_name": "guard", "litellm_params": target},
        {"model_name": "fallback", "litellm_params": {"model": "openai/fallback", "mock_response": "fallback answer"}},
    ],
    context_window_fallbacks=[{"guard": ["fallback"]}],
    num_retries=0,
)
answer = router.completion(model="guard", messages=too_long, max_tokens=200)
report["fallback"] = answer.choices[0].message.content
plain = litellm.completion(messages=[{"role": "user", "content": "Say hello to the team."}], max_tokens=8, **target)
report["plain"] = plain.choices[0].message.content or ""
# How a LiteLLM caller reads guard's decision: the provider's response headers, prefixed `llm_provider-`.
headers = plain._hidden_params.get("additional_headers") or {}
report["decision_id"] = headers.get("llm_provider-x-guard-decision-id", "")
report["guard_in_body"] = str(getattr(plain, "guard", None) is not None)
print(json.dumps(report))
