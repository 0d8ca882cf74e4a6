"""``guard policy test``: run golden test suites (:mod:`guard.evaluation.golden`, where the format is described)
through the real checks exactly as the service runs them.

Exit status: 0 when every case passes, 1 when one fails, 2 when a suite is invalid, empty or names an unknown policy,
or the models cannot load.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from guard.cli.common import err, fail, settings

if TYPE_CHECKING:
    from guard.evaluation import Outcome
    from guard.evaluation.golden import Expectation

__all__ = ["policy_test"]


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
    from guard import evaluation
    from guard.errors import GuardError
    from guard.pipeline import ServiceUnavailable
    from guard.policy import PolicyRegistry
    from guard.settings import PolicySettings

    base = settings()
    directory = policy_dir or base.policy.directory
    config = replace(base, policy=PolicySettings(directory=directory, default=base.policy.default))
    target = path or directory / "tests"
    files = evaluation.suite_files(target)
    if not files:
        fail(f"no suite file at {target}" if not target.is_dir() else f"no suite files (*.yaml) in {target}")
    try:
        policies = PolicyRegistry.from_directory(directory, base.policy.default)
        suites = [(file, evaluation.load_suite(file)) for file in files]
    except GuardError as exc:  # an invalid policy or suite file
        fail(str(exc))
    known = {loaded.name for loaded in policies.all()}
    for file, suite in suites:
        if suite.policy not in known:
            fail(f"{file}: unknown policy {suite.policy!r} (policies in {directory}: {', '.join(sorted(known))})")
    try:
        checks = evaluation.load_checks(config)
    except (GuardError, FileNotFoundError) as exc:
        fail(f"cannot load the checks ({config.profile.value} profile): {exc}")
    runner = evaluation.CheckRunner(checks)
    try:
        results = asyncio.run(evaluation.run_suites(runner, policies, suites, config.profile.value))
    except ServiceUnavailable as exc:  # a check raised: as the service would answer 503, no case result is trusted
        fail(str(exc))
    finally:
        runner.close()
    failed = 0
    for file, suite in suites:
        outcomes = results[file]
        _print(file, suite.policy, outcomes)
        failed += sum(not o.ok for o in outcomes)
    if failed:
        err.print(f"[bold red]guard: {failed} golden case(s) failed[/]", highlight=False)
        sys.exit(1)
