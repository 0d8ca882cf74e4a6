"""``guard models build-dev|pull``: dev models built here, offline; production models pulled on a connected machine."""

from __future__ import annotations

import os
from pathlib import Path

import click

from guard.cli.common import settings as load_settings
from guard.settings import DEFAULT_GENERATOR

__all__ = ["models"]


@click.group()
def models() -> None:
    """Dev models (built here, offline) and production models (pulled on a connected machine)."""


@models.command("build-dev")
@click.option("--force", is_flag=True, help="Rebuild even when the recipe is unchanged.")
def build_dev(force: bool) -> None:
    """Build the tiny dev Gemma generators and the dev detoxify checkpoint into $GUARD_HOME/dev-models."""
    from guard.devmodels.catalog import DEV_BUILDS, is_current

    target = load_settings().dev_models_dir
    for build in DEV_BUILDS:
        directory = target / build.name
        if not force and is_current(directory, build.recipe):
            click.echo(f"{build.name}: up to date ({build.recipe}) in {directory}")
            continue
        click.echo(f"{build.name}: building {build.recipe} ...")
        build.build(directory)
        click.echo(f"{build.name}: built in {directory}")


@models.command("train-toxicity")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/toxicity"),
    show_default=True,
    help="The toxicity corpus (comments.jsonl): read there, never copied into the repository.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to write the delta.")
@click.option("--epochs", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
def train_toxicity(data: Path, out: Path | None, epochs: int, seed: int) -> None:
    """Retrain the dev toxicity model's delta (MiniLM top layers + head; ~15 min on 1 CPU thread).

    Writes guard/devmodels/weights/ unless --out says otherwise; `guard models build-dev --force` then assembles the
    checkpoints from it. Never run in CI: the committed delta is what build-dev uses.
    """
    import logging

    from guard.devmodels.toxicity_minilm import WEIGHTS_DIR
    from guard.devmodels.toxicity_train import train_toxicity as train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    manifest = train(data, out or WEIGHTS_DIR, epochs=epochs, seed=seed)
    click.echo(f"trained {manifest['parameters']} parameters in {manifest['seconds']:.0f} s into {out or WEIGHTS_DIR}")


@models.command("train-prohibited")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/prohibited"),
    show_default=True,
    help="The prohibited-use corpus (requests.jsonl, responses.jsonl): read there, never copied into the repository.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the weights.")
@click.option("--epochs", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Torch threads (the result is reproducible per count).")
def train_prohibited(data: Path, out: Path | None, epochs: int, seed: int, threads: int) -> None:
    """Retrain the prohibited-use classifier (MiniLM top layers + request/response heads; ~20 min on 1 thread).

    Writes policies/prohibited/minilm-safety.safetensors and its training manifest unless --out says otherwise.
    Never run in CI: the committed weights are what the service loads.
    """
    import logging

    from guard.checks.semantic import default_weights_path
    from guard.training.prohibited import train_prohibited as train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    target = out or default_weights_path()
    manifest = train(data, target, epochs=epochs, seed=seed, threads=threads)
    click.echo(f"trained in {manifest['seconds']:.0f} s into {target} (languages: {', '.join(manifest['languages'])})")


@models.command("train-ngram")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/prohibited"),
    show_default=True,
    help="The prohibited-use corpus: its Japanese, Korean and Chinese requests are read there, never copied.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the weights.")
def train_ngram(data: Path, out: Path | None) -> None:
    """Retrain the ja/ko/zh character n-gram classifier of prohibited use (seconds; deterministic).

    Writes policies/prohibited/ngram-cjk.safetensors and its training manifest unless --out says otherwise.
    """
    import logging

    from guard.checks.ngram import NGRAM_WEIGHTS_FILE
    from guard.checks.semantic import default_weights_path
    from guard.training.ngram import train_ngram as train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    target = out or default_weights_path(NGRAM_WEIGHTS_FILE)
    manifest = train(data, target)
    dev = ", ".join(f"{lang} {f['recall']:.0%}/{f['fpr']:.0%}" for lang, f in manifest["dev"].items())
    click.echo(f"trained in {manifest['seconds']:.0f} s into {target} (dev harmful/benign blocked: {dev})")


@models.command("refit-injection")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
    help="The shared corpora (injection/, prohibited/): read there, never copied into the repository.",
)
@click.option("--threshold", default=0.9, show_default=True, help="Where the manifest's dev figures are taken.")
def refit_injection(data: Path, threshold: float) -> None:
    """Refit the injection head on the shipped prohibited-use encoder (minutes; deterministic).

    Rewrites the head in policies/prohibited/minilm-safety.safetensors and records the refit in its manifest.
    """
    import logging

    from guard.checks.semantic import default_weights_path
    from guard.training.injection_head import refit_injection_head

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = refit_injection_head(default_weights_path(), data, threshold)["injection_head_refit"]
    click.echo(f"refit in {report['seconds']:.0f} s; dev flagged at {threshold}: {report['dev']}")


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
