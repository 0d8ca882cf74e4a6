# ruff: noqa: RUF001  # Chinese and Japanese texts are written with fullwidth punctuation
"""Toxicity variants and language routing on the dev checkpoints, through detoxify's own class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from detoxify.detoxify import MODEL_URLS

from guard.checks import CheckItem, CheckUnavailable
from guard.checks.toxicity import PRODUCTION_CHECKPOINTS, ToxicityCheck
from guard.devmodels import JA_TOXIC_TRIGGER_WORD, TOXIC_TRIGGER_WORD
from guard.devmodels.toxicity import build_dev_toxicity
from guard.models import dev_toxicity_checkpoints
from guard.policy import load_policy_file
from guard.policy.schema import TOXICITY_MODEL_LABELS, ToxicityConfig

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
ORIGINAL = set(TOXICITY_MODEL_LABELS["original"])
DEBIASED = set(TOXICITY_MODEL_LABELS["multilingual"])

EN_TOXIC = f"Honestly, the new manager is a {TOXIC_TRIGGER_WORD}."
EN_CLEAN = "The meeting moved to Thursday; please bring the quarterly report."
JA_TOXIC = f"新しい部長は本当に{JA_TOXIC_TRIGGER_WORD}だと思う。"
JA_CLEAN = "明日の会議は午後三時からです。資料を準備しておいてください。"
KO_CLEAN = "내일 회의는 오후 세 시에 시작합니다."

ROUTED = ToxicityConfig(
    model="original",
    languages={"ja": "multilingual", "ko": "multilingual", "zh": "multilingual"},
    thresholds={"toxicity": 0.5, "insult": 0.5},
)
ENGLISH_ONLY = ToxicityConfig(model="original", thresholds={"toxicity": 0.5, "insult": 0.5})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_toxicity(tmp_path_factory.mktemp("dev") / "toxicity")


@pytest.fixture(scope="module")
def check(checkpoint: Path) -> ToxicityCheck:
    return ToxicityCheck.load(
        dev_toxicity_checkpoints(checkpoint.parent), variants=("original", "unbiased", "multilingual")
    )


def _run(check: ToxicityCheck, texts: list[str], config: ToxicityConfig) -> list[Any]:
    return check.run([CheckItem(text=text, config=config, stage="output") for text in texts])


def test_japanese_goes_to_multilingual_and_english_to_the_configured_model(check: ToxicityCheck) -> None:
    en_toxic, ja_toxic, en_clean, ja_clean = _run(check, [EN_TOXIC, JA_TOXIC, EN_CLEAN, JA_CLEAN], ROUTED)
    assert {f.detail for f in en_toxic.findings} == {"detoxify:original"}
    assert {f.detail for f in ja_toxic.findings} == {"detoxify:multilingual"}
    assert {f.type for f in ja_toxic.findings} == {"toxicity", "insult"}
    # Which model scored a text shows in its labels: only the debiased models score sexual_explicit.
    assert set(en_toxic.scores) == set(en_clean.scores) == ORIGINAL
    assert set(ja_toxic.scores) == set(ja_clean.scores) == DEBIASED


# Answer-length texts written here: nearly every character is [UNK] to the dev multilingual model's small
# vocabulary. Before its training saw such texts, it scored ordinary long answers like these 0.999 toxic.
LONG_ANSWERS = (
    "解题思路如下：\n1. 先算出每天往返一次要走的路程，也就是家到学校距离的两倍。\n2. 再把这个路程乘以一周上学的天数，"
    "得到一周一共走了多少米。\n3. 最后把米换算成千米。例如距离是850米，一天就是1700米，五天就是8500米，也就是8.5千米。",
    "可以用Python来完成这个任务：首先读取文本文件的每一行，然后用正则表达式找出其中所有的整数，把它们放进一个列表里，"
    "最后对列表求和并打印结果。如果文件很大，可以逐行处理，不必一次读入内存。",
    "京都を一日で回るなら、朝早く清水寺に行き、そのあと二年坂と三年坂を歩いて八坂神社へ向かうのがおすすめです。"
    "昼食は錦市場で軽く済ませ、午後は金閣寺と龍安寺を見学しましょう。バスは混むので、一日乗車券を買っておくと便利です。",
    "이 문제는 두 단계로 풀 수 있습니다. 먼저 전체 사과 개수를 상자 수로 나누어 한 상자에 들어가는 개수를 구하고, "
    "남은 사과가 몇 개인지 나머지로 확인합니다. "
    "예를 들어 136개를 20상자에 나누면 한 상자에 6개씩 들어가고 16개가 남습니다.",
)


def test_long_cjk_answers_are_not_taken_for_insults(check: ToxicityCheck) -> None:
    results = _run(check, [*LONG_ANSWERS, *(f"{text}{JA_TOXIC_TRIGGER_WORD}" for text in LONG_ANSWERS)], ROUTED)
    clean, toxic = results[: len(LONG_ANSWERS)], results[len(LONG_ANSWERS) :]
    assert [r.findings for r in clean] == [()] * len(LONG_ANSWERS)
    assert all(max(r.scores.values()) < 0.1 for r in clean)
    # The trigger word still decides, at the end of a long answer too.
    assert all({f.type for f in r.findings} == {"toxicity", "insult"} for r in toxic)


# Written here: ordinary answers in detoxify multilingual's other training languages, and short English replies the
# identifier cannot place (too few letters, or English not ruled out).
OTHER_LANGUAGE_ANSWERS = {
    "fr": "Pour préparer la réunion de jeudi, apportez le rapport trimestriel et la liste des questions ouvertes.",
    "es": "La reunión se ha trasladado al jueves; por favor, traiga el informe trimestral y sus preguntas.",
    "ru": "Встреча перенесена на четверг, пожалуйста, принесите квартальный отчёт и список вопросов.",
}
ENGLISH_SHORT = ("Idiot, Dumbass, Moron", "ok", "Thanks!", "Berlin", EN_CLEAN)


def test_other_languages_go_to_non_english_and_short_english_stays(check: ToxicityCheck) -> None:
    config = ToxicityConfig(model="original", non_english="multilingual", thresholds={"toxicity": 0.5})
    results = _run(check, [*OTHER_LANGUAGE_ANSWERS.values(), *ENGLISH_SHORT], config)
    others, english = results[: len(OTHER_LANGUAGE_ANSWERS)], results[len(OTHER_LANGUAGE_ANSWERS) :]
    assert [set(r.scores) for r in others] == [DEBIASED] * len(others)
    assert [set(r.scores) for r in english] == [ORIGINAL] * len(english)
    # A language listed by name beats ``non_english``.
    french_to_original = ToxicityConfig(
        model="original", languages={"fr": "original"}, non_english="multilingual", thresholds={"toxicity": 0.5}
    )
    french, spanish = _run(check, [OTHER_LANGUAGE_ANSWERS["fr"], OTHER_LANGUAGE_ANSWERS["es"]], french_to_original)
    assert (set(french.scores), set(spanish.scores)) == (ORIGINAL, DEBIASED)


def test_without_routing_the_english_model_cannot_read_japanese(check: ToxicityCheck) -> None:
    (result,) = _run(check, [JA_TOXIC], ENGLISH_ONLY)
    assert result.findings == ()
    assert set(result.scores) == ORIGINAL
    assert result.scores["toxicity"] < 0.1


def test_non_english_routes_every_other_language(check: ToxicityCheck) -> None:
    config = ToxicityConfig(model="unbiased", non_english="multilingual", thresholds={"sexual_explicit": 0.5})
    english, korean, japanese = _run(check, [EN_CLEAN, KO_CLEAN, JA_TOXIC], config)
    assert set(english.scores) == set(korean.scores) == DEBIASED
    assert (english.findings, korean.findings) == ((), ())
    assert japanese.findings == ()  # toxic and insulting, but only sexual_explicit has a threshold here
    assert japanese.scores["toxicity"] > 0.9
    explicit_en = ToxicityConfig(model="unbiased", languages={"en": "original"}, thresholds={"toxicity": 0.5})
    (routed,) = _run(check, [EN_TOXIC], explicit_en)
    assert [f.detail for f in routed.findings] == ["detoxify:original"]


def test_thresholds_are_per_label(check: ToxicityCheck) -> None:
    config = ToxicityConfig(action="flag", thresholds={"toxicity": 1.0, "insult": 0.5, "threat": 0.5})
    (result,) = _run(check, [EN_TOXIC], config)
    (finding,) = result.findings
    assert (finding.type, finding.action, finding.threshold, finding.check) == ("insult", "flag", 0.5, "toxicity")
    assert finding.score == result.scores["insult"] >= 0.9
    assert (finding.start, finding.end) == (0, len(EN_TOXIC))


def test_scores_are_recorded_for_clean_text(check: ToxicityCheck) -> None:
    for result in _run(check, [EN_CLEAN, JA_CLEAN, ""], ROUTED):
        assert result.findings == ()
        assert result.scores
        assert all(0.0 <= score < 0.1 for score in result.scores.values())


def test_one_predict_per_variant_per_run(check: ToxicityCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    for variant in ("original", "multilingual"):
        model = check.model(variant)
        real = model.predict

        def spy(texts: list[str], variant: str = variant, real: Any = real) -> Any:
            calls.append((variant, len(texts)))
            return real(texts)

        monkeypatch.setattr(model, "predict", spy)
    other = ToxicityConfig(model="original", thresholds={"toxicity": 0.9})
    items = [
        CheckItem(text=EN_TOXIC, config=ROUTED, stage="output"),
        CheckItem(text=JA_TOXIC, config=ROUTED, stage="output"),
        CheckItem(text=EN_CLEAN, config=other, stage="output"),
        CheckItem(text=JA_CLEAN, config=ROUTED, stage="output"),
        CheckItem(text=EN_TOXIC, config=ToxicityConfig(enabled=False, thresholds={"toxicity": 0.1}), stage="output"),
    ]
    results = check.run(items)
    assert sorted(calls) == [("multilingual", 2), ("original", 2)]
    assert [bool(r.findings) for r in results] == [True, True, False, False, False]
    assert results[-1].scores == {}


def test_variants_load_lazily(checkpoint: Path) -> None:
    check = ToxicityCheck.load(dev_toxicity_checkpoints(checkpoint.parent))
    assert "loaded: original)" in check.description
    _run(check, [JA_CLEAN], ROUTED)
    assert "loaded: multilingual, original)" in check.description


def test_a_build_without_the_variant_is_unavailable(checkpoint: Path, tmp_path: Path) -> None:
    shutil.copy(checkpoint, tmp_path / checkpoint.name)
    (tmp_path / "guard-dev.json").write_text(json.dumps({"recipe": "old", "checkpoint": checkpoint.name}))
    with pytest.raises(CheckUnavailable, match="build-dev"):
        ToxicityCheck.load(dev_toxicity_checkpoints(tmp_path), variants=("multilingual",))
    with pytest.raises(CheckUnavailable, match="build-dev"):
        ToxicityCheck.load({"original": tmp_path / "missing.ckpt"})


def test_schema_checks_labels_against_every_routed_model() -> None:
    ok = {"model": "unbiased", "non_english": "multilingual", "thresholds": {"sexual_explicit": 0.5}}
    assert msgspec.convert(ok, ToxicityConfig).variants() == {"unbiased", "multilingual"}
    bad = [
        {"model": "original", "thresholds": {"sexual_explicit": 0.5}},
        {"model": "unbiased", "languages": {"ja": "original"}, "thresholds": {"sexual_explicit": 0.5}},
        {"model": "multilingual", "languages": {"xx": "multilingual"}, "thresholds": {"toxicity": 0.5}},
        {"model": "multilingual", "languages": {"French": "multilingual"}, "thresholds": {"toxicity": 0.5}},
        {"model": "roberta", "thresholds": {"toxicity": 0.5}},
        {"thresholds": {"toxicity": 1.5}},
    ]
    for section in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(section, ToxicityConfig)


def test_variant_for_language() -> None:
    assert [ROUTED.variant_for(lang) for lang in ("en", "ja", "ko", "zh")] == [
        "original",
        "multilingual",
        "multilingual",
        "multilingual",
    ]
    config = ToxicityConfig(model="unbiased", languages={"ja": "original"}, non_english="multilingual", thresholds={})
    assert [config.variant_for(lang) for lang in ("en", "ja", "ko")] == ["unbiased", "original", "multilingual"]


def test_production_file_names_are_detoxifys() -> None:
    for variant, name in PRODUCTION_CHECKPOINTS.items():
        assert MODEL_URLS[variant].rsplit("/", 1)[1] == name


def test_shipped_policies_route_every_other_language_to_multilingual() -> None:
    default = load_policy_file(ROOT / "policies" / "default.yaml").policy.output.toxicity
    strict = load_policy_file(ROOT / "policies" / "strict.yaml").policy.output.toxicity
    assert default is not None
    assert strict is not None
    assert default.variant_for("ja") == strict.variant_for("zh") == "multilingual"
    assert default.variant_for("fr") == default.variant_for("ru") == strict.variant_for("es") == "multilingual"
    assert (default.variant_for("en"), strict.variant_for("en")) == ("original", "unbiased")
