"""Schemathesis against the app's own OpenAPI schema, over HTTP to the real `guard serve` (dev models).

Every documented operation gets generated requests (valid and invalid ones); each response must not be a server
error and must match the status codes, content types and bodies the schema documents. The example count is
bounded so the run stays short on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, checks

from tests.e2e.serving import Server, running_server

pytestmark = pytest.mark.e2e

_MAX_EXAMPLES = 12
# No server error, and every response conforms to the schema: its status code, content type, headers and body.
# Not positive_data_acceptance: schema-valid requests are rightly refused by runtime limits the static schema cannot
# state (max_tokens over GUARD_MAX_NEW_TOKENS, a prompt over the model's context, a policy's max_input_chars, n > 1,
# tool messages) — those refusals are checked to be documented 4xx with the error body instead.
_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A tiny engine queue is not wanted here: generation requests use the defaults; max_tokens is bounded low so
    # generated requests with huge max_tokens are refused (400) rather than generating for minutes.
    with running_server(guard_home, tmp_path_factory.mktemp("schemathesis"), GUARD_MAX_NEW_TOKENS="8") as running:
        yield running


def _exercise(operation: Any, server: Server) -> int:
    """Run the bounded examples of one operation; the number of calls made."""
    calls = 0

    @given(case=operation.as_strategy())
    @settings(max_examples=_MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(headers=server.auth, timeout=120, checks=_CHECKS)

    check()
    return calls


def test_no_server_error_and_responses_match_the_schema(server: Server) -> None:
    api = schemathesis.openapi.from_url(f"{server.base}/schema/openapi.json")
    # Reloading policies mid-run would only re-read the same files; it is covered by its own tests.
    operations = [result.ok() for result in api.exclude(path="/v1/policies/reload").get_all_operations()]
    assert len(operations) >= 10
    failures: dict[str, str] = {}
    calls: dict[str, int] = {}
    for operation in operations:
        try:
            calls[operation.label] = _exercise(operation, server)
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    print(f"schemathesis: {sum(calls.values())} calls over {len(calls)} operations")
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert all(calls.values())  # every operation was exercised
