"""``guard models build-dev|pull``: dev models built here, offline; production models pulled on a connected machine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from guard.cli.common import settings as load_settings
from guard.settings import DEFAULT_GENERATOR

__all__ = ["models"]

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _data_option(default: str, what: str) -> Callable[[_Command], _Command]:
    """``--data``: a corpus folder beside the repository, read there and never copied into it."""
    return click.option(
        "--data",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
        help=f"{what}: read there, never copied into the repository.",
    )


def _out_option(what: str, *, directory: bool = False) -> Callable[[_Command], _Command]:
    """``--out``: where a training command writes, instead of the committed weights."""
    kind = click.Path(file_okay=False, path_type=Path) if directory else click.Path(dir_okay=False, path_type=Path)
    return click.option("--out", type=kind, help=f"Where to write the {what} (default: the committed ones).")


def _log_progress() -> None:
    """Training commands log their progress with timestamps."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


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
@_data_option("../shared/data/toxicity", "The toxicity corpus (comments.jsonl)")
@_out_option("delta", directory=True)
@click.option("--epochs", default=3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--hard-negative-weight", default=3.0, show_default=True, help="Loss weight of the corpus's benign look-alikes."
)
def train_toxicity(data: Path, out: Path | None, epochs: int, seed: int, hard_negative_weight: float) -> None:
    """Retrain the dev toxicity model's delta (MiniLM's six layers + head; ~20 min on 1 CPU thread).

    Writes guard/devmodels/weights/ unless --out says otherwise; `guard models build-dev --force` then assembles the
    checkpoints from it. Never run in CI: the committed delta is what build-dev uses.
    """
    from guard.devmodels.toxicity_minilm import WEIGHTS_DIR
    from guard.devmodels.toxicity_train import train_toxicity as train

    _log_progress()
    manifest = train(data, out or WEIGHTS_DIR, epochs=epochs, seed=seed, hard_negative_weight=hard_negative_weight)
    click.echo(f"trained {manifest['parameters']} parameters in {manifest['seconds']:.0f} s into {out or WEIGHTS_DIR}")


@models.command("train-prohibited")
@_data_option("../shared/data/prohibited", "The prohibited-use corpus (requests.jsonl, responses.jsonl)")
@_out_option("weights")
@click.option(
    "--injection-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data/injection"),
    show_default=True,
    help="The injection corpus (direct.jsonl, indirect.jsonl) the injection head trains on, with the encoder.",
)
@click.option("--epochs", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Torch threads (the result is reproducible per count).")
@click.option(
    "--extra-requests",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="More request files (JSONL: text, label) taught like guard/training/data's rows: an experiment.",
)
def train_prohibited(
    data: Path,
    out: Path | None,
    injection_data: Path,
    epochs: int,
    seed: int,
    threads: int,
    extra_requests: tuple[Path, ...],
) -> None:
    """Retrain the prohibited-use classifier (MiniLM top layers + request/response heads; ~20 min on 1 thread).

    Writes policies/prohibited/minilm-safety.safetensors and its training manifest unless --out says otherwise.
    Never run in CI: the committed weights are what the service loads.
    """
    from guard.checks.semantic import default_weights_path
    from guard.training.prohibited import train_prohibited as train

    _log_progress()
    target = out or default_weights_path()
    manifest = train(
        data,
        target,
        injection_dir=injection_data,
        epochs=epochs,
        seed=seed,
        threads=threads,
        extra_requests=extra_requests,
    )
    click.echo(f"trained in {manifest['seconds']:.0f} s into {target} (languages: {', '.join(manifest['languages'])})")


@models.command("train-ngram")
@_data_option("../shared/data/prohibited", "The prohibited-use corpus (its Japanese, Korean and Chinese requests)")
@_out_option("weights")
def train_ngram(data: Path, out: Path | None) -> None:
    """Retrain the ja/ko/zh character n-gram classifier of prohibited use (seconds; deterministic).

    Writes policies/prohibited/ngram-cjk.safetensors and its training manifest unless --out says otherwise.
    """
    from guard.checks.ngram import NGRAM_WEIGHTS_FILE
    from guard.checks.semantic import default_weights_path
    from guard.training.ngram import train_ngram as train

    _log_progress()
    target = out or default_weights_path(NGRAM_WEIGHTS_FILE)
    manifest = train(data, target)
    dev = ", ".join(f"{lang} {f['recall']:.0%}/{f['fpr']:.0%}" for lang, f in manifest["dev"].items())
    click.echo(f"trained in {manifest['seconds']:.0f} s into {target} (dev harmful/benign blocked: {dev})")


@models.command("refit-injection")
@_data_option("../shared/data", "The shared corpora (injection/, prohibited/)")
@_out_option("weights")
@click.option("--threshold", default=0.9, show_default=True, help="Where the manifest's dev figures are taken.")
def refit_injection(data: Path, out: Path | None, threshold: float) -> None:
    """Refit the injection head on the shipped prohibited-use encoder (minutes; deterministic).

    Writes the encoder with the new head and its manifest to --out; without it, rewrites the head in
    policies/prohibited/minilm-safety.safetensors in place.
    """
    from guard.checks.semantic import default_weights_path
    from guard.training.injection_head import refit_injection_head

    _log_progress()
    report = refit_injection_head(default_weights_path(), data, threshold, out)["injection_head_refit"]
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
