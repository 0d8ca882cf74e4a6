"""The ``guard`` command: serve, db upgrade, models build-dev/pull, policy validate."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from guard.settings import DEFAULT_GENERATOR, Profile, Settings

__all__ = ["main"]

err = Console(stderr=True)


def _settings(profile: str | None = None) -> Settings:
    return Settings.from_env(profile=profile)


def _fail(message: str) -> None:
    err.print(f"[bold red]guard: {message}[/]", highlight=False, soft_wrap=True)
    sys.exit(2)


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
    import uvicorn

    from guard.app import StartupError, create_app
    from guard.checks import CheckUnavailable
    from guard.engine import EngineUnavailable
    from guard.pipeline import load_models
    from guard.policy import PolicyError, PolicyRegistry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(profile)
    try:
        PolicyRegistry.from_directory(settings.policy.directory, settings.policy.default)
        models = load_models(settings)
        app = create_app(settings, models=models)
    except PolicyError as exc:
        _fail(f"invalid policy: {exc}")
    except (StartupError, EngineUnavailable, CheckUnavailable, FileNotFoundError) as exc:
        _fail(f"cannot start ({settings.profile.value} profile): {exc}")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)


@main.group()
def db() -> None:
    """Audit database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to GUARD_DATABASE_URL."""
    from guard.audit.migrate import upgrade

    url = _settings().database.url
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

    target = _settings().dev_models_dir
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
    from huggingface_hub import snapshot_download

    from guard.checks.pii import PRODUCTION_SPACY_MODEL
    from guard.checks.toxicity import PRODUCTION_CHECKPOINT

    click.echo(f"generator: {snapshot_download(model)}")
    click.echo(f"detoxify config/tokenizer: {snapshot_download('bert-base-uncased')}")
    target = Path(torch.hub.get_dir()) / "checkpoints" / PRODUCTION_CHECKPOINT
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        url = "https://github.com/unitaryai/detoxify/releases/download/v0.1-alpha/" + PRODUCTION_CHECKPOINT
        torch.hub.download_url_to_file(url, str(target))
    click.echo(f"detoxify checkpoint: {target}")
    spacy.cli.download(PRODUCTION_SPACY_MODEL)


@main.group()
def policy() -> None:
    """Policy files."""


@policy.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def policy_validate(path: Path | None) -> None:
    """Validate a policy file or a directory of them (default GUARD_POLICY_DIR); exit 1 on any error."""
    from guard.policy import PolicyError, load_policy_file
    from guard.policy.registry import load_directory

    target = path or _settings().policy.directory
    try:
        loaded = list(load_directory(target).values()) if target.is_dir() else [load_policy_file(target)]
    except PolicyError as exc:
        err.print(f"[red]invalid[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    for item in loaded:
        click.echo(f"ok {item.source}: {item.name} {item.version} sha256={item.sha256}")
