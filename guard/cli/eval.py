"""``guard eval``: score the checks on a labelled dataset (:mod:`guard.evaluation.datasets`) and print the reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
from rich.console import Console

from guard.cli.common import fail
from guard.cli.common import settings as load_settings
from guard.settings import Profile, Settings

if TYPE_CHECKING:
    from guard.evaluation import Report
    from guard.policy import LoadedPolicy

__all__ = ["evaluate"]


@click.command("eval")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_name", help="A policy of GUARD_POLICY_DIR by name (default: the default policy).")
@click.option("--policy-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A policy file.")
@click.option("--stage", type=click.Choice(["input", "output"]), default="input", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write reports here.")
@click.option("--profile", type=click.Choice([p.value for p in Profile]), help="Overrides GUARD_PROFILE.")
def evaluate(
    dataset: Path,
    policy_name: str | None,
    policy_file: Path | None,
    stage: Literal["input", "output"],
    json_out: Path | None,
    profile: str | None,
) -> None:
    """Score the checks on a labelled JSONL set: rows with "spans" (PII), "toxicity" (toxicity: recall, FPR, ROC-AUC,
    calibration) or "label" (injection labels: injection; other labels: prohibited use)."""
    import msgspec

    from guard import evaluation
    from guard.checks import CheckUnavailable
    from guard.policy import PolicyError

    if policy_name and policy_file:
        fail("give --policy or --policy-file, not both")
    try:
        kind, rows = evaluation.read_dataset(dataset)
    except evaluation.DatasetError as exc:
        fail(str(exc))
    settings = load_settings(profile)
    try:
        loaded = _eval_policy(settings, policy_name, policy_file)
        checks = evaluation.load_checks(settings)
    except (PolicyError, LookupError) as exc:
        fail(f"policy: {exc}")
    except (CheckUnavailable, FileNotFoundError) as exc:
        fail(f"cannot load the checks ({settings.profile.value} profile): {exc}")
    reports = evaluation.evaluate(kind, rows, checks, loaded.policy, stage)
    _print_reports(reports)
    if json_out is not None:
        document = {
            "dataset": str(dataset),
            "kind": kind,
            "policy": {"name": loaded.name, "version": loaded.version, "sha256": loaded.sha256},
            "stage": stage,
            "profile": settings.profile.value,
            "reports": msgspec.to_builtins(reports),
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_out}")


def _eval_policy(settings: Settings, name: str | None, path: Path | None) -> LoadedPolicy:
    """The policy ``guard eval`` runs: a file, a named policy of the policy directory, or the default one."""
    from guard.policy import PolicyRegistry, load_policy_file

    if path is not None:
        return load_policy_file(path)
    return PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default).get(name)


def _print_reports(reports: list[Report]) -> None:
    from rich.table import Table

    out = Console(width=None if sys.stdout.isatty() else 160)  # piped output: no need to squeeze into 80 columns
    for report in reports:
        table = Table(title=report.title, title_justify="left")
        for index, column in enumerate(report.columns):
            table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
        for row in report.rows:
            table.add_row(*(f"{cell:.3f}" if isinstance(cell, float) else str(cell) for cell in row))
        out.print(table)
        if report.summary:
            out.print("  ".join(f"{name}={value:g}" for name, value in report.summary.items()), highlight=False)
