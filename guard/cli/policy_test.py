"""``guard policy test``: golden test suites for policies, run through the real checks exactly as the service runs them.

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

Every case's texts go through ``Pipeline.check_texts`` with the policy's input or output section, a fresh
``RequestScope`` per case and the message roles, on the models ``load_models`` loads for the profile; the decision is
:func:`guard.policy.strongest` over the findings' actions, as in the audit record. Exit status: 0 when every case
passes, 1 when one fails, 2 when a suite is invalid, empty or names an unknown policy, or the models cannot load.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
import msgspec

from guard.cli.common import err, fail, settings

if TYPE_CHECKING:
    from guard.pipeline import Pipeline
    from guard.policy import PolicyRegistry

__all__ = ["Case", "Expectation", "Suite", "load_suite", "policy_test"]

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


class SuiteError(ValueError):
    """A suite file that cannot be run; exit status 2."""


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


async def run_case(pipeline: Pipeline, policies: PolicyRegistry, policy_name: str, case: Case) -> Outcome:
    from guard.checks import RequestScope
    from guard.pipeline import INPUT_CHECKS, OUTPUT_CHECKS
    from guard.policy import strongest

    policy = policies.get(policy_name).policy
    texts, roles = case.turns()
    names, section = (INPUT_CHECKS, policy.input) if case.stage == "input" else (OUTPUT_CHECKS, policy.output)
    checked = await pipeline.check_texts(names, section, texts, case.stage, RequestScope(), roles=roles)
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


def _suite_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path] if path.is_file() else []


def _expected(expect: Expectation) -> str:
    parts: list[str] = [expect.decision]
    if expect.findings:
        parts.append(f"[{', '.join(expect.findings)}]")
    if expect.absent:
        parts.append(f"not [{', '.join(expect.absent)}]")
    return " ".join(parts)


def _print(suite_path: Path, policy: str, outcomes: list[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(width=None if sys.stdout.isatty() else 160)
    passed = sum(o.ok and not o.skipped for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    table = Table(
        title=f"{suite_path} (policy {policy}): {passed}/{len(outcomes) - skipped} passed", title_justify="left"
    )
    for column in ("case", "stage", "expected", "got", "ok"):
        table.add_column(column)
    for o in outcomes:
        status = Text("skip", "yellow") if o.skipped else Text("ok", "green") if o.ok else Text("FAIL", "bold red")
        got = Text(o.got)  # Text, not markup: finding lists are in square brackets
        if o.problems:
            got.append("\n" + "; ".join(o.problems), "red")
        table.add_row(Text(o.case.name), o.case.stage, Text(_expected(o.case.expect)), got, status)
    out.print(table)


@click.command("test")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The policies the suites name (default GUARD_POLICY_DIR).",
)
def policy_test(path: Path | None, policy_dir: Path | None) -> None:
    """Run golden test suites (a file, or every *.yaml of a directory; default <policy dir>/tests) through the real
    checks: exit 1 if a case fails, 2 if a suite is invalid, empty or names an unknown policy."""
    from guard.audit import SubjectHasher
    from guard.checks import CheckUnavailable
    from guard.engine import EngineUnavailable
    from guard.models import load_models
    from guard.pipeline import Pipeline, ServiceUnavailable
    from guard.policy import PolicyError, PolicyRegistry
    from guard.settings import PolicySettings

    base = settings()
    directory = policy_dir or base.policy.directory
    config = replace(base, policy=PolicySettings(directory=directory, default=base.policy.default))
    target = path or directory / "tests"
    files = _suite_files(target)
    if not files:
        fail(f"no suite file at {target}" if not target.is_dir() else f"no suite files (*.yaml) in {target}")
    try:
        policies = PolicyRegistry.from_directory(directory, base.policy.default)
        suites = [(file, load_suite(file)) for file in files]
    except (PolicyError, SuiteError) as exc:
        fail(str(exc))
    known = {loaded.name for loaded in policies.all()}
    for file, suite in suites:
        if suite.policy not in known:
            fail(f"{file}: unknown policy {suite.policy!r} (policies in {directory}: {', '.join(sorted(known))})")
    try:
        models = load_models(config)
    except (CheckUnavailable, EngineUnavailable, FileNotFoundError, PolicyError) as exc:
        fail(f"cannot load the checks ({config.profile.value} profile): {exc}")
    # The subject hashes check_texts computes are not looked at here: a throwaway key keeps them unlinkable.
    pipeline = Pipeline(policies, models, None, SubjectHasher(os.urandom(32)), max_new_tokens=1)  # type: ignore[arg-type]
    profile = config.profile.value
    try:
        results = asyncio.run(_run_all(pipeline, policies, suites, profile))
    except ServiceUnavailable as exc:  # a check raised: as the service would answer 503, no case result is trusted
        fail(str(exc))
    finally:
        pipeline.close()
    failed = 0
    for file, suite in suites:
        outcomes = results[file]
        _print(file, suite.policy, outcomes)
        failed += sum(not o.ok for o in outcomes)
    if failed:
        err.print(f"[bold red]guard: {failed} golden case(s) failed[/]", highlight=False)
        sys.exit(1)


async def _run_all(
    pipeline: Pipeline, policies: PolicyRegistry, suites: list[tuple[Path, Suite]], profile: str
) -> dict[Path, list[Outcome]]:
    results: dict[Path, list[Outcome]] = {path: [] for path, _ in suites}
    for path, suite in suites:
        for case in suite.cases:
            if case.profile is not None and case.profile != profile:
                results[path].append(Outcome(case, f"skipped: needs the {case.profile} profile", [], skipped=True))
            else:
                results[path].append(await run_case(pipeline, policies, suite.policy, case))
    return results
