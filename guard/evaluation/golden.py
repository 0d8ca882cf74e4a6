"""Golden test suites for policies (``guard policy test``), run through the real checks exactly as the service runs
them.

A suite is a YAML file per policy (``policies/tests/<policy>.yaml`` by convention)::

    policy: default               # a policy of the policy directory, by name
    cases:
      - name: email is redacted
        stage: input              # input | output
        text: "Mail me at jane.doe@example.com"   # one text (input: a user message; output: the model's answer)
        expect:
          decision: redact        # allow | redact | flag | block: the strongest action of the findings
          findings: [EMAIL_ADDRESS]              # finding types that must be present (entity, category, label...)
          absent: [PERSON]        # optional: finding types that must not be present
          redacted: "Mail me at <EMAIL_ADDRESS_1>"  # optional: the rewritten text (with messages: the last one's)
      - name: a conversation
        stage: input
        messages:                 # input only, instead of text: the request's messages with their roles
          - {role: system, content: "You are a helpful assistant."}
          - {role: user, content: "Hello"}
        expect: {decision: allow}
      - name: toxic answer
        stage: output
        profile: dev              # optional: run only under this profile (GUARD_PROFILE), skipped otherwise
        text: "..."
        expect: {decision: block, findings: [toxicity]}

Every case's texts go through the policy's input or output checks (:class:`~guard.evaluation.runner.CheckRunner`)
with a fresh ``RequestScope`` per case and the message roles, on the models the profile loads; the decision is
:func:`guard.policy.strongest` over the findings' actions, as in the audit record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from guard.checks import RequestScope
from guard.errors import GuardError
from guard.evaluation.runner import CheckRunner
from guard.policy import PolicyRegistry, strongest

__all__ = [
    "Case",
    "Expectation",
    "Message",
    "Outcome",
    "Suite",
    "SuiteError",
    "load_suite",
    "run_case",
    "run_suites",
    "suite_files",
]

Decision = Literal["allow", "redact", "flag", "block"]


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["user", "system", "assistant"]
    content: str


class Expectation(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    decision: Decision
    findings: list[str] = msgspec.field(default_factory=list)
    """Finding types that must be present: PII entities, prohibited-use categories, toxicity labels, injection kinds."""
    absent: list[str] = msgspec.field(default_factory=list)
    redacted: str | None = None
    """The rewritten text as the model (input) or the caller (output, before the vault) would get it."""


class Case(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    stage: Literal["input", "output"]
    expect: Expectation
    text: str | None = None
    messages: list[Message] | None = None
    profile: Literal["dev", "production"] | None = None
    """Run only under this profile: e.g. output toxicity cases using the dev classifier's trigger word."""

    def __post_init__(self) -> None:
        if (self.text is None) == (self.messages is None):
            raise ValueError(f"case {self.name!r}: give exactly one of `text` or `messages`")
        if self.messages is not None and self.stage != "input":
            raise ValueError(f"case {self.name!r}: `messages` is for the input stage; an output case has `text`")
        if self.messages == []:
            raise ValueError(f"case {self.name!r}: `messages` is empty")

    def turns(self) -> tuple[list[str], list[str] | None]:
        """The texts to check and their roles as the service passes them (output texts have no role)."""
        if self.messages is not None:
            return [m.content for m in self.messages], [m.role for m in self.messages]
        assert self.text is not None
        return [self.text], (["user"] if self.stage == "input" else None)


class Suite(msgspec.Struct, forbid_unknown_fields=True):
    policy: str
    cases: list[Case] = msgspec.field(default_factory=list)


class SuiteError(GuardError, ValueError):
    """A suite file that cannot be run (``guard policy test`` exits with status 2)."""


def suite_files(path: Path) -> list[Path]:
    """The suite at ``path``, or every ``*.yaml``/``*.yml`` directly in that directory, in name order."""
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path] if path.is_file() else []


def load_suite(path: Path) -> Suite:
    try:
        suite = msgspec.yaml.decode(path.read_bytes(), type=Suite)
    except (msgspec.ValidationError, msgspec.DecodeError, OSError) as exc:
        raise SuiteError(f"{path}: {exc}") from None
    if not suite.cases:
        raise SuiteError(f"{path}: the suite has no cases")
    return suite


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    got: str
    problems: list[str]
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.skipped or not self.problems


async def run_case(runner: CheckRunner, policies: PolicyRegistry, policy_name: str, case: Case) -> Outcome:
    """``case`` under the policy called ``policy_name``: what it decided and found, and how that differs from the
    expectation."""
    policy = policies.get(policy_name).policy
    texts, roles = case.turns()
    section = policy.input if case.stage == "input" else policy.output
    checked = await runner.run(case.stage, section, texts, RequestScope(), roles=roles)
    decision = strongest([f.action for f in checked.findings])
    types = sorted({f.type for f in checked.findings})
    expect, problems = case.expect, []
    if decision != expect.decision:
        problems.append(f"decision {decision}, expected {expect.decision}")
    if missing := [t for t in expect.findings if t not in types]:
        problems.append(f"missing {', '.join(missing)}")
    if unwanted := [t for t in expect.absent if t in types]:
        problems.append(f"unexpected {', '.join(unwanted)}")
    if expect.redacted is not None and checked.texts[-1] != expect.redacted:
        problems.append(f"redacted {checked.texts[-1]!r}")
    return Outcome(case, f"{decision} [{', '.join(types)}]" if types else decision, problems)


async def run_suites(
    runner: CheckRunner, policies: PolicyRegistry, suites: list[tuple[Path, Suite]], profile: str
) -> dict[Path, list[Outcome]]:
    """Every case of every suite, one after the other; a case for another profile is skipped."""
    results: dict[Path, list[Outcome]] = {path: [] for path, _ in suites}
    for path, suite in suites:
        for case in suite.cases:
            if case.profile is not None and case.profile != profile:
                results[path].append(Outcome(case, f"skipped: needs the {case.profile} profile", [], skipped=True))
            else:
                results[path].append(await run_case(runner, policies, suite.policy, case))
    return results
