"""``guard policy …``: the policy author's commands. Each command lives in its own module of this package and is
registered on :data:`policy` below."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from guard.cli.common import err, settings

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


from guard.cli.policy_test import policy_test  # noqa: E402  (its own module; registered on the group above)

policy.add_command(policy_test)

from guard.cli.policy_author import policy_diff, policy_schema, policy_show  # noqa: E402

for _command in (policy_schema, policy_show, policy_diff):
    policy.add_command(_command)

from guard.cli.policy_shadow import replay, shadow_report  # noqa: E402

policy.add_command(shadow_report)
policy.add_command(replay)
