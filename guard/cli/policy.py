"""``guard policy …``: the policy author's commands. ``validate`` is here; the others live in their own modules of
this package and are registered on :data:`policy` below."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from guard.cli.common import err, settings
from guard.cli.policy_author import policy_diff, policy_schema, policy_show
from guard.cli.policy_shadow import replay, shadow_report
from guard.cli.policy_test import policy_test

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Policy files: validate, and (more commands) before a change goes live."""


@policy.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def policy_validate(path: Path | None) -> None:
    """Validate a policy file or a directory of them (default GUARD_POLICY_DIR); exit 2 on any error."""
    from guard.policy import PolicyError, load_policy_file
    from guard.policy.registry import load_directory

    target = path or settings().policy.directory
    try:
        loaded = list(load_directory(target).values()) if target.is_dir() else [load_policy_file(target)]
    except PolicyError as exc:
        err.print(f"[red]invalid[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    for item in loaded:
        click.echo(f"ok {item.source}: {item.name} {item.version} sha256={item.sha256}")


for _command in (policy_test, policy_schema, policy_show, policy_diff, shadow_report, replay):
    policy.add_command(_command)
