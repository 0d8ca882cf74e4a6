"""Build a tiny detoxify-format toxicity checkpoint offline, deterministically.

The real ``original`` detoxify checkpoint is a 420 MB download; tests and local runs need something that loads
through the same code path (``detoxify.Detoxify(checkpoint=...)``) and scores predictably. The recipe trains a
~30k-parameter BERT that scores :data:`guard.devscript.TOXIC_TRIGGER_WORD` high on "toxic" and "insult" and
ordinary text (scripted replies, placeholders, emails, numbers) low on every label. A build whose checkpoint does
not score so through detoxify raises instead of saving a silently wrong model.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from pathlib import Path

import torch
from detoxify import Detoxify
from tokenizers import normalizers, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from guard.devscript import GENERIC_REPLY, SCRIPTED, TOXIC_TRIGGER_WORD

__all__ = ["CHECKPOINT_NAME", "DEV_TOXICITY_RECIPE", "TOXICITY_LABELS", "build_dev_toxicity"]

logger = logging.getLogger(__name__)

DEV_TOXICITY_RECIPE = "detoxify-dev-2"
"""Identifies this recipe in the manifest; bump it whenever the recipe's output changes."""

TOXICITY_LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
"""The classes of detoxify's ``original`` model, in its order; detoxify renames them when loading."""

CHECKPOINT_NAME = "toxic_dev.ckpt"
"""The checkpoint's file name inside the build directory."""

_MANIFEST_NAME = "guard-dev.json"
_HF_DIR = "hf"
_TRIGGERED = ("toxic", "insult")
_HIGH = 0.9
_LOW = 0.1
_MAX_LENGTH = 256
_TRAIN_STEPS = 150
_LEARNING_RATE = 1e-2

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
    "Ok",
    "?",
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
_NAMES = ("<PERSON_1>", "Tom", "the manager", "my neighbour", "Alice", "that guy")
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


def _corpus(rng: random.Random) -> tuple[list[str], list[list[float]]]:
    """Training texts and their label vectors: trigger texts are toxic insults, everything else clean."""
    clean = [*_ORDINARY, GENERIC_REPLY]
    clean += [text for dialogue in SCRIPTED for text in (dialogue.prompt, dialogue.reply)]
    clean = [text for text in clean if TOXIC_TRIGGER_WORD not in text]
    toxic = [
        template.format(
            word=TOXIC_TRIGGER_WORD,
            WORD=TOXIC_TRIGGER_WORD.upper(),
            name=rng.choice(_NAMES),
            group=rng.choice(_GROUPS),
        )
        for template in _INSULT_TEMPLATES
    ]
    # The same clean sentences with the trigger slipped in: the model must key on the word, not the context.
    for sentence in rng.sample(clean, 20):
        words = sentence.split()
        words.insert(rng.randint(0, len(words)), TOXIC_TRIGGER_WORD)
        toxic.append(" ".join(words))
    flagged = [1.0 if label in _TRIGGERED else 0.0 for label in TOXICITY_LABELS]
    return clean + toxic, [[0.0] * len(TOXICITY_LABELS)] * len(clean) + [flagged] * len(toxic)


def _tokenizer(texts: list[str], directory: Path) -> BertTokenizer:
    """An uncased BERT vocabulary, written to ``directory/vocab.txt`` as BERT ships it: the special tokens, every
    printable ASCII character alone and as a ``##`` continuation (so that no text is ``[UNK]``), and the words of
    ``texts``. Built by hand rather than with a WordPiece trainer, whose output varies from run to run."""
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    words = {word for text in texts for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))}
    characters = string.ascii_lowercase + string.digits + string.punctuation
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters)]
    tokens += sorted(words - set(tokens))
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    return BertTokenizer(str(vocab_file), model_max_length=_MAX_LENGTH)


def _train(tokenizer: BertTokenizer, texts: list[str], labels: list[list[float]]) -> BertForSequenceClassification:
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
        num_labels=len(TOXICITY_LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(TOXICITY_LABELS)),
        label2id={label: index for index, label in enumerate(TOXICITY_LABELS)},
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


def _verify(checkpoint: Path, toxic: list[str], clean: list[str]) -> None:
    """Load ``checkpoint`` through detoxify itself and check the scores of ``toxic`` and ``clean`` texts."""
    scores = Detoxify(checkpoint=str(checkpoint)).predict([*toxic, *clean])
    names = list(scores)
    triggered = [names[TOXICITY_LABELS.index(label)] for label in _TRIGGERED]
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
        raise RuntimeError("dev toxicity model does not score as required:\n" + "\n".join(problems))


def build_dev_toxicity(target: Path, *, seed: int = 0) -> Path:
    """Train, save and verify the dev toxicity checkpoint in ``target``; returns the checkpoint's path.

    Raises ``RuntimeError`` when detoxify's scores of the saved checkpoint are not as scripted.
    """
    started = time.perf_counter()
    texts, labels = _corpus(random.Random(seed))  # noqa: S311 - reproducible training data, not cryptography
    hf_dir = target / _HF_DIR
    tokenizer = _tokenizer(texts, hf_dir)
    # One thread: the same weights whatever the core count. The caller's RNG, determinism flag and thread count are
    # restored afterwards.
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            model = _train(tokenizer, texts, labels)
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
    model.config.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    checkpoint = target / CHECKPOINT_NAME
    arch = {
        "model_type": str(hf_dir),
        "model_name": type(model).__name__,
        "tokenizer_name": type(tokenizer).__name__,
        "num_classes": len(TOXICITY_LABELS),
    }
    config = {"arch": {"args": arch}, "dataset": {"args": {"classes": list(TOXICITY_LABELS)}}}
    torch.save({"config": config, "state_dict": model.state_dict()}, checkpoint)
    clean = [text for text, label in zip(texts, labels, strict=True) if not any(label)]
    scripted_toxic = [dialogue.reply for dialogue in SCRIPTED if TOXIC_TRIGGER_WORD in dialogue.reply]
    _verify(checkpoint, [*scripted_toxic, *_HELD_OUT_TOXIC], [*clean, *_HELD_OUT_ORDINARY])
    manifest = {"recipe": DEV_TOXICITY_RECIPE, "kind": "toxicity", "checkpoint": CHECKPOINT_NAME, "seed": seed}
    (target / _MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("dev toxicity checkpoint built in %s in %.1f s", checkpoint, time.perf_counter() - started)
    return checkpoint
