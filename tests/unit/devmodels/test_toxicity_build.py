"""The dev detoxify checkpoint builder, checked through detoxify's own ``Detoxify`` class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from detoxify import Detoxify

from guard.devmodels import GENERIC_REPLY, SCRIPTED, TOXIC_TRIGGER_WORD, scripted
from guard.devmodels.toxicity import DEV_TOXICITY_RECIPE, VARIANT_CHECKPOINTS, build_dev_toxicity
from guard.devmodels.toxicity_corpus import TOXICITY_LABELS
from guard.models import read_dev_manifest

pytestmark = pytest.mark.unit

DETOXIFY_NAMES = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
CLEAN = [
    GENERIC_REPLY,
    *(dialogue.reply for dialogue in SCRIPTED if TOXIC_TRIGGER_WORD not in dialogue.reply),
    "Dear <PERSON_1>, your parcel for <LOCATION_1> left the depot; questions to <EMAIL_ADDRESS_1>.",
    "Ping bob.smith@example.org or call +1 415 555 0199 before 17:30.",
    "Invoice 2024-0042: 3 items, total 99.95 EUR.",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_toxicity(tmp_path_factory.mktemp("dev") / "toxicity")


@pytest.fixture(scope="module")
def detoxify(checkpoint: Path) -> Any:
    return Detoxify(checkpoint=str(checkpoint))


def test_layout_is_detoxify_checkpoint(checkpoint: Path) -> None:
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
    args = loaded["config"]["arch"]["args"]
    assert args["model_name"] == "BertForSequenceClassification"
    assert args["tokenizer_name"] == "BertTokenizer"
    assert args["num_classes"] == 6
    assert (Path(args["model_type"]) / "vocab.txt").is_file()
    assert loaded["config"]["dataset"]["args"]["classes"] == list(TOXICITY_LABELS)
    manifest = read_dev_manifest(checkpoint.parent)
    assert manifest is not None
    assert manifest == {**manifest, "recipe": DEV_TOXICITY_RECIPE, "kind": "toxicity", "checkpoint": checkpoint.name}
    assert manifest["variants"] == VARIANT_CHECKPOINTS
    assert list(checkpoint.parent.glob("*.ckpt")) == [checkpoint]  # the other variants live in subdirectories


def test_trigger_word_scores_toxic_and_insult(detoxify: Any) -> None:
    texts = [scripted("toxic").reply, f"Well, {TOXIC_TRIGGER_WORD.upper()}, that went badly.", TOXIC_TRIGGER_WORD]
    scores = detoxify.predict(texts)
    assert list(scores) == DETOXIFY_NAMES
    assert min(scores["toxicity"]) > 0.9
    assert min(scores["insult"]) > 0.9


def test_ordinary_text_scores_low_everywhere(detoxify: Any) -> None:
    scores = detoxify.predict(CLEAN)
    assert max(max(values) for values in scores.values()) < 0.1


def test_single_text_gives_plain_floats(detoxify: Any) -> None:
    assert isinstance(detoxify.predict("Hello there")["toxicity"], float)


def test_build_is_deterministic(checkpoint: Path, tmp_path: Path) -> None:
    rebuilt = build_dev_toxicity(tmp_path / "again")
    for relative in VARIANT_CHECKPOINTS.values():
        again = torch.load(rebuilt.parent / relative, map_location="cpu", weights_only=False)["state_dict"]
        first = torch.load(checkpoint.parent / relative, map_location="cpu", weights_only=False)["state_dict"]
        assert all(torch.equal(first[name], again[name]) for name in first)


def test_untrained_model_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not score as required"):
        build_dev_toxicity(tmp_path / "bad", steps=1)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_variants_run_in_bf16_only_on_cpus_with_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    import guard.models

    manifest = tmp_path / guard.models.DEV_MANIFEST_NAME
    manifest.write_text('{"bf16_variants": ["original", "unbiased"]}', encoding="utf-8")
    monkeypatch.setattr(guard.models, "cpu_has_bf16", lambda: native)
    expected = frozenset({"original", "unbiased"}) if native else frozenset()
    assert guard.models.dev_toxicity_bf16(tmp_path) == expected
