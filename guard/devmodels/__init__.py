"""Offline builders of the dev models (``guard models build-dev``) and the script they are trained to follow.

No runtime package imports this one (an import-linter contract says so): the service loads what a build saved
and reads its manifest through :func:`guard.models.read_dev_manifest`.

- :mod:`~guard.devmodels.script`: the scripted replies and trigger words (what tests and the README rely on);
  re-exported here, and light to import.
- :mod:`~guard.devmodels.catalog`: every build, in order (imports torch: the CLI imports it when it builds).
- :mod:`~guard.devmodels.generator`, :mod:`~guard.devmodels.dialogues`, :mod:`~guard.devmodels.training`,
  :mod:`~guard.devmodels.tokenizer`: the tiny Gemma generators, their dialogues, training loop and tokenizer.
- :mod:`~guard.devmodels.toxicity`, :mod:`~guard.devmodels.toxicity_corpus`: the detoxify-format checkpoints;
  :mod:`~guard.devmodels.toxicity_minilm` assembles the fine-tuned MiniLM one from the committed delta in
  ``weights/``, :mod:`~guard.devmodels.toxicity_train` retrains that delta (``guard models train-toxicity``).
- :mod:`~guard.devmodels.toxicity_data`, :mod:`~guard.training.injection_data`: the public corpora of
  ``../shared/data`` split by source row (train/dev/test, published benchmarks left out), for training, rule tuning
  and ``benchmarks/detection.py``.
- :mod:`~guard.devmodels.manifest`: what a build is, and the manifest it writes last.
"""

from __future__ import annotations

from guard.devmodels.script import (
    GENERIC_REPLY,
    JA_TOXIC_TRIGGER_WORD,
    SCRIPTED,
    TOXIC_TRIGGER_WORD,
    ScriptedDialogue,
    scripted,
)

__all__ = [
    "GENERIC_REPLY",
    "JA_TOXIC_TRIGGER_WORD",
    "SCRIPTED",
    "TOXIC_TRIGGER_WORD",
    "ScriptedDialogue",
    "scripted",
]
