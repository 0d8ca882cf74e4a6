"""The ``guard`` command: serve, db upgrade, models build-dev/pull, policy …, eval (subcommand groups with many
commands live in their own modules of this package)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from rich.console import Console

from guard.cli.audit import audit
from guard.cli.common import fail
from guard.cli.common import settings as load_settings
from guard.cli.keys import keys
from guard.cli.policy import policy
from guard.logs import configure_logging
from guard.settings import DEFAULT_GENERATOR, Profile, Settings

if TYPE_CHECKING:
    from guard.evaluation import Report
    from guard.policy import LoadedPolicy

__all__ = ["main"]


@click.group()
@click.version_option(package_name="guard")
def main() -> None:
    """guard: a responsible-AI safety gateway around Gemma-2."""
    # Before torch loads: OpenMP's busy-wait policy makes decode ~10x slower on small CPUs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # presidio's email/URL recognizers use tldextract, which tries the network first without this.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")), show_default="$PORT or 8000")
@click.option("--profile", type=click.Choice([p.value for p in Profile]), help="Overrides GUARD_PROFILE.")
def serve(host: str, port: int, profile: str | None) -> None:
    """Run the gateway (production profile unless GUARD_PROFILE=dev)."""
    settings = load_settings(profile)
    log_config = configure_logging(settings.observability.log_format)
    if settings.observability.log_format == "json":  # model-loading progress bars are not JSON lines
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

    import uvicorn

    from guard.app import StartupError, create_app
    from guard.checks import CheckUnavailable
    from guard.engine import EngineUnavailable
    from guard.models import load_models
    from guard.policy import PolicyError, PolicyRegistry

    try:
        PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default)
        models = load_models(settings)
        app = create_app(settings, models=models)
    except PolicyError as exc:
        fail(f"invalid policy: {exc}")
    except (StartupError, EngineUnavailable, CheckUnavailable, FileNotFoundError) as exc:
        fail(f"cannot start ({settings.profile.value} profile): {exc}")
    # SIGTERM: uvicorn stops accepting, lets in-flight requests finish (bounded), runs the app shutdown, then re-raises
    # the signal under the handler that was there before. Ignoring it then makes a completed drain exit 0.
    signal.signal(signal.SIGTERM, _drained)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=log_config,
        log_level="info",
        timeout_graceful_shutdown=settings.api.shutdown_timeout_s,
    )


def _drained(_signum: int, _frame: FrameType | None) -> None:
    """The SIGTERM uvicorn re-raises after its graceful shutdown: nothing left to do."""


@main.group()
def db() -> None:
    """Audit database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to GUARD_DATABASE_URL."""
    from guard.audit.migrate import upgrade

    url = load_settings().database.url
    upgrade(url, revision)
    click.echo(f"database at revision {revision}: {url.split('@')[-1]}")


@main.group()
def models() -> None:
    """Dev models (built here, offline) and production models (pulled on a connected machine)."""


@models.command("build-dev")
@click.option("--force", is_flag=True, help="Rebuild even when the recipe is unchanged.")
def build_dev(force: bool) -> None:
    """Build the tiny dev Gemma generators and the dev detoxify checkpoint into $GUARD_HOME/dev-models."""
    from guard.checks.devmodel import DEV_TOXICITY_RECIPE, build_dev_toxicity
    from guard.engine.devmodel import DEV_GENERATORS

    target = load_settings().dev_models_dir
    generators = [(generator.name, generator.recipe, generator.build) for generator in DEV_GENERATORS.values()]
    for name, recipe, build in [*generators, ("toxicity", DEV_TOXICITY_RECIPE, build_dev_toxicity)]:
        manifest = target / name / "guard-dev.json"
        if not force and manifest.is_file() and json.loads(manifest.read_text())["recipe"] == recipe:
            click.echo(f"{name}: up to date ({recipe}) in {manifest.parent}")
            continue
        click.echo(f"{name}: building {recipe} ...")
        build(target / name)
        click.echo(f"{name}: built in {manifest.parent}")


@models.command("pull")
@click.option("--model", default=lambda: os.environ.get("GUARD_MODEL") or DEFAULT_GENERATOR, show_default=True)
def pull(model: str) -> None:
    """Fetch the production models (needs network; Gemma is gated: `hf auth login` first)."""
    import spacy.cli
    import torch
    from detoxify.detoxify import MODEL_URLS
    from huggingface_hub import snapshot_download

    from guard.checks.pii import PRODUCTION_SPACY_MODEL
    from guard.checks.toxicity import HF_BASE_MODELS, PRODUCTION_CHECKPOINTS

    click.echo(f"generator: {snapshot_download(model)}")
    # Every detoxify variant a policy may choose: its weights into the torch hub cache, and the config and tokenizer
    # files (not the weights) of the Hugging Face model its checkpoint names.
    for variant, checkpoint in PRODUCTION_CHECKPOINTS.items():
        files = snapshot_download(HF_BASE_MODELS[variant], allow_patterns=["*.json", "*.txt", "*.model"])
        click.echo(f"detoxify {variant} config/tokenizer: {files}")
        target = Path(torch.hub.get_dir()) / "checkpoints" / checkpoint
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(MODEL_URLS[variant], str(target))
        click.echo(f"detoxify {variant} checkpoint: {target}")
    spacy.cli.download(PRODUCTION_SPACY_MODEL)


@main.command("eval")
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
    stage: str,
    json_out: Path | None,
    profile: str | None,
) -> None:
    """Score the checks on a labelled JSONL set: rows with "spans" (PII) or "label" (prohibited use)."""
    from collections.abc import Callable

    import msgspec

    from guard.checks import CheckUnavailable
    from guard.evaluation import pii, prohibited
    from guard.models import load_models
    from guard.policy import PolicyError

    evaluators: dict[str, Callable[..., list[Report]]] = {"pii": pii.evaluate, "prohibited": prohibited.evaluate}
    if policy_name and policy_file:
        fail("give --policy or --policy-file, not both")
    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        fail(f"{dataset} has no rows")
    kind = "pii" if "spans" in rows[0] else "prohibited" if "label" in rows[0] else ""
    if not kind:
        fail(f"{dataset}: rows need a 'spans' (PII) or a 'label' (prohibited use) key")
    settings = load_settings(profile)
    try:
        loaded = _eval_policy(settings, policy_name, policy_file)
        checks = load_models(settings).checks
    except (PolicyError, LookupError) as exc:
        fail(f"policy: {exc}")
    except (CheckUnavailable, FileNotFoundError) as exc:
        fail(f"cannot load the checks ({settings.profile.value} profile): {exc}")
    reports = evaluators[kind](rows, checks, loaded.policy, stage)
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


main.add_command(policy)
main.add_command(keys)
main.add_command(audit)
