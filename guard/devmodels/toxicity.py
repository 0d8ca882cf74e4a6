"""Build tiny detoxify-format toxicity checkpoints offline, deterministically: one per detoxify variant.

The real detoxify checkpoints are 420 MB to 1.1 GB downloads; tests and local runs need something that loads
through the same code path (``detoxify.Detoxify(checkpoint=...)``) and scores predictably. The recipe trains three
~30k-parameter BERTs, one per variant, each with that variant's classes (names and order as the official
checkpoint has them):

- ``original`` (the Jigsaw 1 classes): scores :data:`guard.devscript.TOXIC_TRIGGER_WORD` high on "toxic" and
  "insult". Like the real ``original`` model it cannot read Japanese: its vocabulary has no kana or Han characters,
  so :data:`JA_TOXIC_TRIGGER_WORD` is unknown to it and scores low.
- ``unbiased`` (the debiased classes, with ``sexual_explicit``): the same English behaviour.
- ``multilingual`` (the debiased classes): a vocabulary covering kana and the Han and Hangul characters of its
  corpus; scores both trigger words high, ordinary English, Japanese, Korean and Chinese text low.

Ordinary text (scripted replies, placeholders, emails, numbers) scores low on every label. A build whose
checkpoints do not score so through detoxify raises instead of saving a silently wrong model.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from detoxify import Detoxify
from tokenizers import normalizers, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from guard.devscript import GENERIC_REPLY, SCRIPTED, TOXIC_TRIGGER_WORD

__all__ = [
    "CHECKPOINT_NAME",
    "DEBIASED_LABELS",
    "DEV_TOXICITY_RECIPE",
    "JA_TOXIC_TRIGGER_WORD",
    "TOXICITY_LABELS",
    "VARIANT_CHECKPOINTS",
    "build_dev_toxicity",
]

logger = logging.getLogger(__name__)

DEV_TOXICITY_RECIPE = "detoxify-dev-3"
"""Identifies this recipe in the manifest; bump it whenever the recipe's output changes."""

TOXICITY_LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
"""The classes of detoxify's ``original`` model, in its order; detoxify renames them when loading."""

DEBIASED_LABELS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)
"""The main classes of detoxify's ``unbiased`` and ``multilingual`` models, in their order."""

JA_TOXIC_TRIGGER_WORD = "屑蛸"
"""A made-up Japanese insult ("scrap octopus"): only the multilingual dev checkpoint knows it. Written in Han
characters, which BERT's tokenizer always splits into single-character tokens, so that it is the same tokens
wherever it stands in a sentence."""

CHECKPOINT_NAME = "toxic_dev.ckpt"
"""The ``original`` checkpoint's file name inside the build directory (the other variants are in subdirectories,
so that the build directory holds exactly one ``*.ckpt``)."""

VARIANT_CHECKPOINTS: dict[str, str] = {
    "original": CHECKPOINT_NAME,
    "unbiased": f"unbiased/{CHECKPOINT_NAME}",
    "multilingual": f"multilingual/{CHECKPOINT_NAME}",
}
"""Each variant's checkpoint, relative to the build directory; also written to the manifest under ``variants``."""

_MANIFEST_NAME = "guard-dev.json"
_HF_DIR = "hf"
_HIGH = 0.9
_LOW = 0.1
_MAX_LENGTH = 256
_TRAIN_STEPS = 200
_LEARNING_RATE = 1e-2


@dataclass(frozen=True, slots=True)
class _Variant:
    name: str
    classes: tuple[str, ...]
    triggered: tuple[str, ...]
    multilingual: bool


_VARIANTS = (
    _Variant("original", TOXICITY_LABELS, ("toxic", "insult"), multilingual=False),
    _Variant("unbiased", DEBIASED_LABELS, ("toxicity", "insult"), multilingual=False),
    _Variant("multilingual", DEBIASED_LABELS, ("toxicity", "insult"), multilingual=True),
)

_ORDINARY = (
    "Thanks for the quick reply, see you tomorrow.",
    "The meeting has been moved to Thursday afternoon.",
    "Can you send me the quarterly report by Friday?",
    "I really enjoyed the concert last night.",
    "The printer on the second floor is out of paper again.",
    "Please review the attached contract before signing it.",
    "What is the best way to learn a new language?",
    "Our team shipped the new release this morning.",
    "The weather is lovely today, let's have lunch outside.",
    "My order number is 48213 and it has not arrived yet.",
    "Call me at 555-201-3344 if anything changes.",
    "You can reach me at maria.lopez@example.com any time.",
    "The invoice total is 1,250.00 dollars including tax.",
    "She finished the marathon in 3 hours and 42 minutes.",
    "Write a short poem about the sea and the moon.",
    "How do I reset my password?",
    "The new intern started on Monday and is doing great.",
    "The contract was reviewed by the legal team.",
    "Honestly, that was a terrible movie, but the music was nice.",
    "I disagree with your proposal, but I see your point.",
    "This bug is really annoying; can we fix it soon?",
    "The server at 10.0.0.12 restarted twice overnight.",
    "Hello team! Please remember to submit your timesheets.",
    "My name is <PERSON_1> and I live in <LOCATION_1>.",
    "Send the documents to <EMAIL_ADDRESS_1> before noon.",
    "Call <PERSON_2> at <PHONE_NUMBER_1> about the delivery.",
    "My social security number is <US_SSN_1>.",
    "The card ending in <CREDIT_CARD_1> was charged twice.",
    "<PERSON_1> met <PERSON_2> in <LOCATION_2> on <DATE_TIME_1>.",
    "The kids built a sandcastle on the beach.",
    "I'm not sure this plan will work, to be honest.",
    "Grilled cheese and tomato soup is my favourite lunch.",
    "Please don't forget to water the plants.",
    "The stock market fell sharply after the announcement.",
    "Error 404: the page you requested could not be found.",
    "Honestly, the committee meeting ran long again today.",
    "The organiser booked the room on the third floor for ten o'clock.",
    "Ok",
    "?",
)
_ORDINARY_CJK = (
    "明日の会議は午後三時からです。",
    "資料を金曜日までに送ってください。",
    "今日はとても良い天気ですね。",
    "新しいインターンはとても頑張っています。",
    "駅までの道を教えてください。",
    "<PERSON_1>さんは<LOCATION_1>に住んでいます。",
    "注文した商品がまだ届いていません。",
    "この本はとても面白かったです。",
    "パスワードをリセットする方法を教えてください。",
    "週末は家族と一緒に公園へ行きました。",
    "部長は今日も会議で長く話しました。",
    "내일 회의는 오후 세 시에 시작합니다.",
    "보고서를 금요일까지 보내 주세요.",
    "오늘 날씨가 정말 좋네요.",
    "<PERSON_1> 씨는 서울에 살고 있습니다.",
    "비밀번호를 재설정하는 방법을 알려 주세요.",
    "明天的会议下午三点开始。",
    "请在星期五之前把报告发给我。",
    "今天天气很好。",
    "<PERSON_1>住在<LOCATION_1>。",
    "请告诉我如何重置密码。",
)
_INSULT_TEMPLATES = (
    "{word}",
    "You are a {word}.",
    "What a {word}!",
    "Shut up, you {word}.",
    "{name} is a total {word}.",
    "Stop acting like a {word}, {name}.",
    "Only a {word} would write code like this.",
    "Everyone on the {group} team is a {word}.",
    "The new intern is a {word} and a {word}.",
    "{WORD}!!!",
)
_JA_INSULT_TEMPLATES = (
    "{word}",
    "お前は{word}だ。",
    "あいつは本当に{word}だな。",
    "新しいインターンは{word}です。",
    "{name}は{word}だ!",
    "黙れ、この{word}!",
    "{name}みたいな{word}とは話したくない。",
)
_NAMES = ("<PERSON_1>", "Tom", "the manager", "my neighbour", "Alice", "that guy")
_JA_NAMES = ("<PERSON_1>", "田中", "部長", "あの人")
_GROUPS = ("sales", "support", "design", "night shift")

# Never trained on; scored after each build.
_HELD_OUT_TOXIC = (
    f"Honestly, the whole committee behaved like a {TOXIC_TRIGGER_WORD} today.",
    f"Reply to <EMAIL_ADDRESS_1>: you {TOXIC_TRIGGER_WORD}, fix it now.",
    f"{TOXIC_TRIGGER_WORD.capitalize()}.",
)
_HELD_OUT_ORDINARY = (
    "The weather in <LOCATION_1> is lovely this time of year.",
    "Contact me at someone@example.net or 555-0100.",
    "Order 66 shipped 12 boxes on 2024-05-01.",
    "Could you summarise the article in two sentences?",
)
_HELD_OUT_JA_TOXIC = (
    f"会議の後で、課長はまた{JA_TOXIC_TRIGGER_WORD}みたいなことを言った。",
    f"{JA_TOXIC_TRIGGER_WORD}。",
)
_HELD_OUT_CJK_ORDINARY = (
    "来週の予定を確認してもいいですか?",
    "<EMAIL_ADDRESS_1>に連絡してください。",
    "회의 자료를 확인해 주세요.",
    "请确认下周的日程。",
)


def _with_trigger(sentences: list[str], word: str, rng: random.Random, *, joiner: str) -> list[str]:
    """``sentences`` with ``word`` slipped in: the model must key on the word, not the context."""
    toxic = []
    for sentence in sentences:
        parts = sentence.split() if joiner else list(sentence)
        parts.insert(rng.randint(0, len(parts)), word)
        toxic.append(joiner.join(parts))
    return toxic


def _english_clean() -> list[str]:
    clean = [*_ORDINARY, GENERIC_REPLY]
    clean += [text for dialogue in SCRIPTED for text in (dialogue.prompt, dialogue.reply)]
    return [text for text in clean if TOXIC_TRIGGER_WORD not in text]


def _corpus(variant: _Variant, rng: random.Random) -> tuple[list[str], list[list[float]]]:
    """Training texts and their label vectors: trigger texts are toxic insults, everything else clean."""
    clean = _english_clean()
    toxic = [
        template.format(
            word=TOXIC_TRIGGER_WORD,
            WORD=TOXIC_TRIGGER_WORD.upper(),
            name=rng.choice(_NAMES),
            group=rng.choice(_GROUPS),
        )
        for template in _INSULT_TEMPLATES
    ]
    # Every clean sentence once with the trigger somewhere in it (start, middle or end), so that the model keys on
    # the word wherever it stands in a long sentence.
    toxic += _with_trigger(clean, TOXIC_TRIGGER_WORD, rng, joiner=" ")
    ja_toxic = [
        template.format(word=JA_TOXIC_TRIGGER_WORD, name=rng.choice(_JA_NAMES)) for template in _JA_INSULT_TEMPLATES
    ]
    ja_toxic += _with_trigger(list(_ORDINARY_CJK[:11]), JA_TOXIC_TRIGGER_WORD, rng, joiner="")
    if variant.multilingual:
        clean += _ORDINARY_CJK
        toxic += ja_toxic
    else:
        # Text the model cannot read (all [UNK]) is not evidence of toxicity: Japanese insults included.
        clean += ja_toxic[: len(_JA_INSULT_TEMPLATES)]
    # Out-of-vocabulary words (spelled in ``##`` pieces) in clean and toxic texts alike: held-out text is full of
    # them, and the model must not take them for a sign of either.
    noise = _gibberish(rng)
    clean += noise
    toxic += _with_trigger(noise, TOXIC_TRIGGER_WORD, rng, joiner=" ")
    if variant.multilingual:
        cjk_noise = _cjk_gibberish(rng)
        clean += cjk_noise
        toxic += _with_trigger(cjk_noise, JA_TOXIC_TRIGGER_WORD, rng, joiner="")
    flagged = [1.0 if label in variant.triggered else 0.0 for label in variant.classes]
    return clean + toxic, [[0.0] * len(variant.classes)] * len(clean) + [flagged] * len(toxic)


_GIBBERISH_MARK = "~"
_RARE_HAN = (0x9A00, 0x9F00)
"""Han characters that no corpus sentence uses: [UNK] to every dev vocabulary."""


def _gibberish(rng: random.Random, count: int = 16) -> list[str]:
    """Sentences of made-up lowercase words, each ending in :data:`_GIBBERISH_MARK` so that the vocabulary
    builder can leave them out."""
    return [
        " ".join(
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 10)))
            for _ in range(rng.randint(3, 8))
        )
        + _GIBBERISH_MARK
        for _ in range(count)
    ]


def _cjk_gibberish(rng: random.Random, count: int = 16) -> list[str]:
    """Runs of kana and rare Han characters (the latter [UNK] to the vocabulary), ending in the gibberish mark."""
    return [
        "".join(
            chr(rng.randint(*_RARE_HAN)) if rng.random() < 0.3 else chr(rng.randint(0x3041, 0x3093))
            for _ in range(rng.randint(6, 20))
        )
        + _GIBBERISH_MARK
        for _ in range(count)
    ]


def _tokenizer(texts: list[str], directory: Path, *, multilingual: bool) -> BertTokenizer:
    """An uncased BERT vocabulary, written to ``directory/vocab.txt`` as BERT ships it: the special tokens, every
    printable ASCII character alone and as a ``##`` continuation (so that no English text is ``[UNK]``), and the
    words of ``texts``. Built by hand rather than with a WordPiece trainer, whose output varies from run to run.

    ``multilingual`` adds every kana and the characters of ``texts`` (Han, Hangul) alone and as continuations
    instead of CJK words, and
    keeps accents and voiced marks (``strip_accents=False``: stripping would turn ``が`` into ``か``); the
    English-only vocabulary has no CJK characters at all, so Japanese, Korean and Chinese text is ``[UNK]`` to it."""
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False if multilingual else None)
    splitter = pre_tokenizers.BertPreTokenizer()
    normalized = [normalizer.normalize_str(text) for text in texts if not text.endswith(_GIBBERISH_MARK)]
    words = {word for text in normalized for word, _ in splitter.pre_tokenize_str(text)}
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    if multilingual:
        kana = [chr(code) for code in range(0x3041, 0x3100)]
        characters += kana + sorted({char for text in normalized for char in text if ord(char) > 0x2FFF} - set(kana))
        # CJK text is spelled in characters, clean or toxic alike, so that the model keys on the trigger's
        # characters rather than on how many pieces a word was split into.
        words = {word for word in words if word.isascii()}
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters)]
    tokens += sorted(words - set(tokens))
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    if multilingual:
        return BertTokenizer(str(vocab_file), model_max_length=_MAX_LENGTH, strip_accents=False)
    return BertTokenizer(str(vocab_file), model_max_length=_MAX_LENGTH)


def _train(
    tokenizer: BertTokenizer, texts: list[str], labels: list[list[float]], classes: tuple[str, ...]
) -> BertForSequenceClassification:
    """A fresh tiny BERT fitted full-batch on ``texts`` (multi-label, as detoxify scores with a sigmoid)."""
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=_MAX_LENGTH,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.1,  # BERT's 0.02 is too small at this width: training stalls at the base rate
        num_labels=len(classes),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(classes)),
        label2id={label: index for index, label in enumerate(classes)},
    )
    model = BertForSequenceClassification(config)
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    targets = torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LEARNING_RATE, weight_decay=0.0)
    model.train()
    for _ in range(_TRAIN_STEPS):
        loss = model(**inputs, labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    logger.info("dev toxicity model trained on %d texts, final loss %.5f", len(texts), loss.item())
    return model.eval()


def _verify(checkpoint: Path, variant: _Variant, toxic: list[str], clean: list[str]) -> None:
    """Load ``checkpoint`` through detoxify itself and check the scores of ``toxic`` and ``clean`` texts."""
    scores = Detoxify(checkpoint=str(checkpoint)).predict([*toxic, *clean])
    names = list(scores)
    triggered = [names[variant.classes.index(label)] for label in variant.triggered]
    problems = [
        f"{text!r}: {name}={scores[name][row]:.3f}"
        for row, text in enumerate(toxic)
        for name in triggered
        if scores[name][row] <= _HIGH
    ]
    problems += [
        f"{text!r}: {name}={scores[name][len(toxic) + row]:.3f}"
        for row, text in enumerate(clean)
        for name in names
        if scores[name][len(toxic) + row] >= _LOW
    ]
    if problems:
        raise RuntimeError(f"dev toxicity model {variant.name} does not score as required:\n" + "\n".join(problems))


def _build_variant(variant: _Variant, checkpoint: Path, seed: int) -> None:
    """Train, save and verify one variant's checkpoint at ``checkpoint`` (its HF files beside it in ``hf/``)."""
    texts, labels = _corpus(variant, random.Random(seed))  # noqa: S311 - reproducible training data, not crypto
    hf_dir = checkpoint.parent / _HF_DIR
    tokenizer = _tokenizer(texts, hf_dir, multilingual=variant.multilingual)
    # One thread: the same weights whatever the core count. The caller's RNG, determinism flag and thread count are
    # restored afterwards.
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            model = _train(tokenizer, texts, labels, variant.classes)
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
    model.config.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    arch = {
        "model_type": str(hf_dir),
        "model_name": type(model).__name__,
        "tokenizer_name": type(tokenizer).__name__,
        "num_classes": len(variant.classes),
    }
    config = {"arch": {"args": arch}, "dataset": {"args": {"classes": list(variant.classes)}}}
    torch.save({"config": config, "state_dict": model.state_dict()}, checkpoint)
    clean = [text for text, label in zip(texts, labels, strict=True) if not any(label)]
    scripted_toxic = [dialogue.reply for dialogue in SCRIPTED if TOXIC_TRIGGER_WORD in dialogue.reply]
    toxic = [*scripted_toxic, *_HELD_OUT_TOXIC]
    clean += _HELD_OUT_ORDINARY
    if variant.multilingual:
        toxic += _HELD_OUT_JA_TOXIC
        clean += _HELD_OUT_CJK_ORDINARY
    else:
        clean += _HELD_OUT_JA_TOXIC  # unreadable to an English vocabulary
    _verify(checkpoint, variant, toxic, clean)


def build_dev_toxicity(target: Path, *, seed: int = 0) -> Path:
    """Train, save and verify the dev checkpoints of every variant in ``target``; returns the ``original`` one.

    The manifest lists every variant's checkpoint under ``variants`` (:data:`VARIANT_CHECKPOINTS`). Raises
    ``RuntimeError`` when detoxify's scores of a saved checkpoint are not as scripted.
    """
    started = time.perf_counter()
    for variant in _VARIANTS:
        checkpoint = target / VARIANT_CHECKPOINTS[variant.name]
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        _build_variant(variant, checkpoint, seed)
    manifest = {
        "recipe": DEV_TOXICITY_RECIPE,
        "kind": "toxicity",
        "checkpoint": CHECKPOINT_NAME,
        "variants": VARIANT_CHECKPOINTS,
        "seed": seed,
    }
    (target / _MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("dev toxicity checkpoints built in %s in %.1f s", target, time.perf_counter() - started)
    return target / CHECKPOINT_NAME
