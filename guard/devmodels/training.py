"""How the dev generators are trained and checked: tokenised dialogues, batches, loss, the optimiser loop, greedy
decoding checks in float32 and bfloat16 after reloading, and reproducibility (one thread, deterministic kernels)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from guard.devmodels.dialogues import Example
from guard.devmodels.tokenizer import END_OF_TURN

__all__ = [
    "Schedule",
    "TrainingSequence",
    "chat_sequences",
    "fit",
    "greedy",
    "mismatches",
    "reproducible",
    "save",
    "verify_dtypes",
]

logger = logging.getLogger(__name__)

_MAX_NEW_TOKENS = 64
_BATCH_SIZE = 16
_LEARNING_RATE = 3e-3
_DECISION_WEIGHT = 4.0


@dataclass(frozen=True, slots=True)
class TrainingSequence:
    """A tokenized training dialogue: prompt ids followed by the ``reply_length`` ids the loss is taken on."""

    ids: list[int]
    reply_length: int


def _render(tokenizer: PreTrainedTokenizerBase, example: Example) -> list[int]:
    """Token ids of the chat-rendered prompt, ready for the model's reply (the template supplies ``<bos>``)."""
    text = tokenizer.apply_chat_template(example.chat(), tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _reply_ids(tokenizer: PreTrainedTokenizerBase, reply: str) -> list[int]:
    return [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.convert_tokens_to_ids(END_OF_TURN)]


def chat_sequences(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]) -> list[TrainingSequence]:
    sequences = []
    for example in examples:
        reply = _reply_ids(tokenizer, example.reply)
        sequences.append(TrainingSequence(_render(tokenizer, example) + reply, len(reply)))
    return sequences


def _batches(
    sequences: Sequence[TrainingSequence], generator: torch.Generator, batch_size: int = _BATCH_SIZE
) -> Iterator[list[TrainingSequence]]:
    """Endless shuffled batches, each drawn from sequences of similar length so that little is padding."""
    while True:
        order = torch.randperm(len(sequences), generator=generator).tolist()
        for start in range(0, len(order), 8 * batch_size):
            window = sorted(order[start : start + 8 * batch_size], key=lambda index: len(sequences[index].ids))
            groups = [window[first : first + batch_size] for first in range(0, len(window), batch_size)]
            for group in torch.randperm(len(groups), generator=generator).tolist():
                yield [sequences[index] for index in groups[group]]


def _loss(model: PreTrainedModel, batch: Sequence[TrainingSequence]) -> torch.Tensor:
    """Cross-entropy on the reply tokens, the first one (where the model decides scripted or generic) weighted up.
    Left padding (as in batched generation) lines the replies up at the end, so only the last few positions need
    logits."""
    width = max(len(sequence.ids) for sequence in batch)
    keep = max(sequence.reply_length for sequence in batch) + 1
    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.zeros((len(batch), keep - 1), dtype=torch.long)
    weights = torch.zeros((len(batch), keep - 1))
    for row, sequence in enumerate(batch):
        first = keep - 1 - sequence.reply_length
        input_ids[row, width - len(sequence.ids) :] = torch.tensor(sequence.ids)
        targets[row, first:] = torch.tensor(sequence.ids[-sequence.reply_length :])
        weights[row, first:] = 1.0
        weights[row, first] = _DECISION_WEIGHT
    lengths = torch.tensor([len(sequence.ids) for sequence in batch])
    attention_mask = (torch.arange(width) >= width - lengths[:, None]).long()
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=keep
    ).logits
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
    return (losses * weights).sum() / weights.sum()


@dataclass(frozen=True, slots=True)
class Schedule:
    """How long and how fast :func:`fit` trains."""

    steps: int
    batch_size: int = _BATCH_SIZE
    learning_rate: float = _LEARNING_RATE


def fit(model: PreTrainedModel, sequences: Sequence[TrainingSequence], schedule: Schedule, seed: int) -> None:
    """AdamW with linear warm-up and decay over ``schedule.steps`` batches."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=0.0)
    warmup = max(1, schedule.steps // 15)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * (1.0 - step / schedule.steps)
    )
    model.train()
    batches = _batches(sequences, torch.Generator().manual_seed(seed), schedule.batch_size)
    for _ in range(schedule.steps):
        loss = _loss(model, next(batches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    logger.info("%s trained on %d sequences, last batch loss %.4f", type(model).__name__, len(sequences), loss.item())
    model.eval()


def greedy(
    model: PreTrainedModel, prompts: Sequence[list[int]], pad: Callable[..., Any]
) -> list[tuple[str, list[int]]]:
    """Greedy continuations of ``prompts``, one at a time and then all together in one left-padded batch."""
    outputs: list[tuple[str, list[int]]] = []
    with torch.no_grad():
        for prompt in prompts:
            input_ids = torch.tensor([prompt])
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=_MAX_NEW_TOKENS,
            )
            outputs.append(("single", generated[0, len(prompt) :].tolist()))
        batch = pad({"input_ids": list(prompts)}, padding=True, return_tensors="pt")
        generated = model.generate(**batch, do_sample=False, max_new_tokens=_MAX_NEW_TOKENS)
        outputs.extend(("batch", row[batch["input_ids"].shape[1] :].tolist()) for row in generated)
    return outputs


def mismatches(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cases: Sequence[Example]) -> list[str]:
    """Cases whose greedy output is not exactly the expected reply closed by ``<end_of_turn>``: one at a time, then
    all together in one left-padded batch."""
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    stops = {tokenizer.eos_token_id, end_of_turn}
    outputs = greedy(model, [_render(tokenizer, case) for case in cases], tokenizer.pad)
    problems: list[str] = []
    for (mode, tokens), case in zip(outputs, [*cases, *cases], strict=True):
        stop = next((index for index, token in enumerate(tokens) if token in stops), len(tokens))
        text = tokenizer.decode(tokens[:stop], skip_special_tokens=True).strip()
        if text != case.reply or stop == len(tokens) or tokens[stop] != end_of_turn:
            problems.append(f"{mode} {case.messages[-1][1]!r} -> {tokenizer.decode(tokens)!r}")
    return problems


def verify_dtypes(target: Path, check: Callable[[PreTrainedModel, PreTrainedTokenizerBase], list[str]]) -> None:
    """Reload ``target`` through the public Auto classes and run ``check`` in float32 and bfloat16."""
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    problems = [f"float32 {problem}" for problem in check(model, tokenizer)]
    model.to(torch.bfloat16)
    problems += [f"bfloat16 {problem}" for problem in check(model, tokenizer)]
    if problems:
        raise RuntimeError(f"dev generator {target.name} does not behave as scripted:\n" + "\n".join(problems))


@contextmanager
def reproducible() -> Iterator[None]:
    """One thread and deterministic kernels: the same weights whatever the core count, and faster for a model this
    small (thread wake-ups cost more than they save). The caller's RNG, flag and thread count are restored."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)


def save(target: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """``model`` and ``tokenizer`` into ``target`` as Hugging Face saves them (the manifest comes after the checks)."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
