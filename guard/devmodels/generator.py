"""Build tiny dev generators of the Gemma family offline, deterministically.

Tests and local runs need generators that load and generate exactly like the real ones (same architecture, special
tokens, chat template, stop tokens) without downloading them. Each recipe trains a small BPE tokenizer (the same
one for all three) and a ~0.5M-parameter model:

- ``gemma-2``: like ``google/gemma-2-2b-it``; each :data:`guard.devscript.SCRIPTED` prompt yields its reply under
  greedy decoding and every other prompt yields :data:`guard.devscript.GENERIC_REPLY`.
- ``systemgemma-2``: Gemma-2 with a SystemGemma2-style template (native system turn), briefly trained to answer
  every conversation with :data:`~guard.devscript.GENERIC_REPLY`.
- ``gemma-1-base``: a Gemma-1 base model like ``beomi/gemma-mling-7b`` (no chat template), briefly trained to
  continue a few English sentences.

A build whose model does not behave so (in float32, bfloat16 and left-padded batches, after reloading) raises
instead of saving a silently wrong model.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GemmaTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from guard.devscript import GENERIC_REPLY, SCRIPTED

__all__ = [
    "DEV_GENERATORS",
    "DEV_GENERATOR_RECIPE",
    "GEMMA1_BASE_RECIPE",
    "GEMMA2_CHAT_TEMPLATE",
    "SYSTEMGEMMA2_CHAT_TEMPLATE",
    "SYSTEMGEMMA2_RECIPE",
    "DevGenerator",
    "build_dev_gemma1_base",
    "build_dev_generator",
    "build_dev_systemgemma2",
]

logger = logging.getLogger(__name__)

DEV_GENERATOR_RECIPE = "gemma2-dev-3"
"""Identifies this recipe in the manifest; bump it whenever the recipe's output changes."""

GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
"""The chat template of ``google/gemma-2-2b-it``, verbatim."""

SYSTEMGEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ '<start_of_turn>system\n' + messages[0]['content'] | trim + '<end_of_turn>\n' }}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
"""Gemma-2's template with a leading system message rendered as its own ``<start_of_turn>system`` turn."""

SYSTEMGEMMA2_RECIPE = "systemgemma2-dev-1"
GEMMA1_BASE_RECIPE = "gemma1-base-dev-1"

_MANIFEST_NAME = "guard-dev.json"

_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")
_UNKNOWN = "<unk>"
_END_OF_TURN = "<end_of_turn>"
_LEARNED_VOCAB = 1200
_MAX_NEW_TOKENS = 48

_MODEL_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "query_pre_attn_scalar": 32,
    "sliding_window": 64,
    "layer_types": ["sliding_attention", "full_attention"],
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "max_position_embeddings": 1024,
}
_TRAIN_STEPS = 300
_BATCH_SIZE = 16
_LEARNING_RATE = 3e-3
_DECISION_WEIGHT = 4.0
_PLAIN_COPIES = 6

_Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class _Sequence:
    """A tokenized training dialogue: prompt ids followed by the ``reply_length`` ids the loss is taken on."""

    ids: list[int]
    reply_length: int


@dataclass(frozen=True, slots=True)
class _Example:
    """A conversation ending in a user turn, and the reply the dev model must give to it."""

    messages: tuple[tuple[str, str], ...]
    reply: str

    def chat(self) -> list[_Message]:
        return [{"role": role, "content": content} for role, content in self.messages]


# Word lists the generic prompts are composed from: varied enough that the model learns "anything not scripted".
_TOPICS = (
    "the weather",
    "photosynthesis",
    "a car engine",
    "the stock market",
    "machine learning",
    "tax returns",
    "the history of Rome",
    "black holes",
    "baking bread",
    "climate change",
    "the water cycle",
    "electric cars",
    "our quarterly budget",
    "the new office",
    "remote work",
    "the holiday schedule",
    "password rules",
    "the database migration",
    "a healthy breakfast",
    "learning Spanish",
    "the moon landing",
    "volcanoes",
    "the hiring process",
    "my insurance claim",
    "the train timetable",
    "solar panels",
    "chess openings",
)
_FORMS = ("poem", "summary", "short story", "list of tips", "haiku", "paragraph", "letter", "checklist")
_DOCS = ("invoice", "report", "contract draft", "meeting notes", "presentation", "spreadsheet", "receipt")
_DAYS = ("Monday", "Tuesday", "Friday", "tomorrow", "next week", "the end of the month", "noon")
_TASKS = (
    "my account",
    "a refund",
    "the login page",
    "my order",
    "a late payment",
    "the printer",
    "my schedule",
    "a billing error",
    "the shipping address",
    "my subscription",
)
_NAMES = ("Alice Martin", "Bob Stone", "Carla Diaz", "David Kim", "Emma Novak", "Farid Khan", "Grace Lee")
_DOMAINS = ("example.com", "mail.test", "corp.example.net", "school.example.edu")
_PLACEHOLDERS = (
    "<PERSON_1>",
    "<PERSON_2>",
    "<EMAIL_ADDRESS_1>",
    "<PHONE_NUMBER_1>",
    "<US_SSN_1>",
    "<LOCATION_1>",
    "<LOCATION_2>",
    "<CREDIT_CARD_1>",
    "<IP_ADDRESS_1>",
    "<DATE_TIME_1>",
)
_GREETINGS = ("Hi", "Hello!", "Good morning.", "Thanks a lot!", "Hey there.", "Are you there?", "OK", "Test")
_FILLERS = ("the", "new", "old", "team", "desk", "contract", "intern", "hello", "support", "boss", "report")
_TEMPLATES = (
    "What is {topic}?",
    "Can you explain {topic} in simple terms?",
    "Please write a {form} about {topic}.",
    "Write a {form} for {name}.",
    "Tell me something interesting about {topic}.",
    "How long does it take to learn about {topic}?",
    "I need help with {task}.",
    "Why does {topic} matter?",
    "My name is {ph} and I need help with {task}.",
    "Send the {doc} to {ph} by {day}.",
    "Call {ph} at {ph2} about the {doc}.",
    "My SSN is {ph}, can you check {task}?",
    "I am travelling to {ph} {day}, what should I pack?",
    "Can {ph} review the {doc} before {day}?",
    "Please forward the {doc} from {ph} to {ph2}.",
    "{name} asked about {task}; what should I tell them?",
    "My email is {email} and my phone is {phone}.",
    "Contact {name} at {email} about the {doc}.",
    "I was charged {number} dollars twice for {task}.",
    "Remind me to send the {doc} on {day}.",
    "Compare {topic} and {topic2}.",
    "Is it true that {topic} is complicated?",
    "Summarize the {doc} in three bullet points.",
    "Describe {topic}.",
    "Who wrote the {doc}?",
    "How do I fix {task}?",
    "Say something nice about {topic}.",
    "{greeting}",
    "{greeting} {greeting2}",
)
_SYSTEM_TEXTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in one sentence.",
    "Be polite and professional.",
    "You work for the IT help desk of a large company.",
    "Never reveal personal data. Keep answers short.",
    "Answer as a friendly tutor.",
    "You are an assistant for the finance team; be precise.",
    "Follow the company policy and do not speculate.",
    "Reply in plain English without markdown.",
    "You are a customer service agent for an online shop.",
)
# Ordinary English so that words the dialogues never use still split into sensible subwords.
_ENGLISH = (
    "The quick brown fox jumps over the lazy dog while the children watch from the garden.",
    "Most people drink coffee or tea in the morning before they start working.",
    "The government announced a new plan to build houses, schools and hospitals across the country.",
    "Scientists observed that the temperature of the ocean has been rising for several decades.",
    "She opened the window, looked at the mountains and decided to go for a long walk.",
    "Please remember to lock the door, switch off the lights and feed the cat before leaving.",
    "Learning a musical instrument takes patience, practice and a good teacher.",
    "The library is closed on Sundays, but you can return books through the slot outside.",
    "Our family travelled by train through beautiful villages, forests and rivers last summer.",
    "Good software is tested carefully, documented clearly and maintained by people who care.",
    "The restaurant serves fresh vegetables, grilled fish, warm soup and homemade desserts.",
    "It was raining heavily, so the football match was postponed until the following weekend.",
    string.ascii_letters + string.digits + string.punctuation,
)


def _fill(template: str, rng: random.Random) -> str:
    """One generic prompt from ``template`` with its slots drawn from the word lists."""
    name = rng.choice(_NAMES)
    return template.format(
        topic=rng.choice(_TOPICS),
        topic2=rng.choice(_TOPICS),
        form=rng.choice(_FORMS),
        doc=rng.choice(_DOCS),
        day=rng.choice(_DAYS),
        task=rng.choice(_TASKS),
        name=name,
        ph=rng.choice(_PLACEHOLDERS),
        ph2=rng.choice(_PLACEHOLDERS),
        email=f"{name.split()[0].lower()}@{rng.choice(_DOMAINS)}",
        phone=f"555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}",
        number=rng.randrange(2, 1000),
        greeting=rng.choice(_GREETINGS),
        greeting2=rng.choice(_GREETINGS),
    )


def _near_misses(prompt: str, rng: random.Random) -> Iterator[str]:
    """Scripted prompts with their first or last word swapped: these get the generic reply, so that the model keys
    on the whole prompt rather than on one word of it."""
    words = prompt.rstrip(".?!").split()
    ending = prompt[len(prompt.rstrip(".?!")) :]
    fillers = [filler for filler in _FILLERS if filler not in {word.lower() for word in words}]
    for filler in rng.sample(fillers, 2):
        yield " ".join([filler.capitalize(), *words[1:]]) + ending
        yield " ".join([*words[:-1], filler]) + ending


# Never trained on; checked after each build together with the plain scripted prompts.
_HELD_OUT: tuple[_Example, ...] = tuple(
    _Example(messages, GENERIC_REPLY)
    for messages in (
        (("user", "My name is Jane Doe and my email is jane@example.org, please help me."),),
        (("user", "<PERSON_1> lives in <LOCATION_1>; her number is <PHONE_NUMBER_1> and her SSN is <US_SSN_1>."),),
        (("user", "Why is the sky blue?"),),
        (("user", "Summarise this email from <EMAIL_ADDRESS_1> in two sentences."),),
        (("user", "Tell me a joke about penguins."),),
        (("user", "Answer carefully.\n\nWhat should I cook for dinner tonight?"),),
        (("user", "Hello!"), ("assistant", GENERIC_REPLY), ("user", "What time is it in Tokyo?")),
    )
) + tuple(
    _Example(messages, dialogue.reply)
    for dialogue in SCRIPTED
    for messages in (
        (("user", f"You are a safe assistant. Do not reveal secrets.\n\n{dialogue.prompt}"),),
        (("user", "Can you help me with my taxes?"), ("assistant", GENERIC_REPLY), ("user", dialogue.prompt)),
    )
)


def _system_text(rng: random.Random, generic: Sequence[str]) -> str:
    """Text folded into the first user turn the way a system prompt is for Gemma: varied, so that any preamble
    works."""
    pool = rng.choice((_SYSTEM_TEXTS, _ENGLISH[:-1], generic))
    return " ".join(rng.sample(pool, rng.randint(1, 2)))


def _training_examples(rng: random.Random) -> list[_Example]:
    """The dialogues the generator is trained on, scripted ones oversampled so they are learnt exactly."""
    generic = sorted({_fill(template, rng) for template in _TEMPLATES for _ in range(12)})
    scripted: list[_Example] = []
    others: list[_Example] = []
    for dialogue in SCRIPTED:
        scripted += [_Example((("user", dialogue.prompt),), dialogue.reply)] * _PLAIN_COPIES
        for _ in range(2):
            earlier = rng.choice(SCRIPTED)
            for history in ((earlier.prompt, earlier.reply), (rng.choice(generic), GENERIC_REPLY)):
                if history[0] != dialogue.prompt:
                    turns = (("user", history[0]), ("assistant", history[1]), ("user", dialogue.prompt))
                    scripted.append(_Example(turns, dialogue.reply))
        for _ in range(12):
            folded = f"{_system_text(rng, generic)}\n\n{dialogue.prompt}"
            scripted.append(_Example((("user", folded),), dialogue.reply))
        others.extend(_Example((("user", miss),), GENERIC_REPLY) for miss in _near_misses(dialogue.prompt, rng))
        turns = (("user", dialogue.prompt), ("assistant", dialogue.reply), ("user", rng.choice(generic)))
        others.append(_Example(turns, GENERIC_REPLY))
    for prompt in generic:
        others.append(_Example((("user", prompt),), GENERIC_REPLY))
        if rng.random() < 0.25:
            folded = f"{_system_text(rng, generic)}\n\n{prompt}"
            others.append(_Example((("user", folded),), GENERIC_REPLY))
        if rng.random() < 0.25:
            turns = (("user", rng.choice(generic)), ("assistant", GENERIC_REPLY), ("user", prompt))
            others.append(_Example(turns, GENERIC_REPLY))
    held_out = {example.messages for example in _HELD_OUT}
    repeats = max(1, len(others) // (2 * len(scripted)))
    return [example for example in scripted * repeats + others if example.messages not in held_out]


def _corpus(seed: int) -> tuple[list[_Example], list[str]]:
    """The gemma-2 training dialogues and the texts every dev tokenizer is trained on (the same for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible training data, not cryptography
    examples = _training_examples(rng)
    texts = [content for example in examples for _, content in example.messages]
    texts += [*(example.reply for example in examples), *_ENGLISH, "user\nmodel\n\n"]
    return examples, texts


def _train_tokenizer(texts: Sequence[str], chat_template: str | None) -> GemmaTokenizer:
    """A Gemma-style BPE tokenizer: byte fallback, '▁' for spaces, Gemma's special tokens and ids."""
    trainer_backend = Tokenizer(models.BPE(unk_token=_UNKNOWN, byte_fallback=True))
    trainer_backend.normalizer = normalizers.Replace(" ", "▁")
    # Split before each '▁' only while learning merges, so that no merge spans two words.
    trainer_backend.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=_LEARNED_VOCAB, min_frequency=2, show_progress=False)
    trainer_backend.train_from_iterator(texts, trainer=trainer)
    learned = json.loads(trainer_backend.to_str())["model"]
    vocab = {token: index for index, token in enumerate(_SPECIAL_TOKENS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token in sorted(learned["vocab"], key=learned["vocab"].__getitem__):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learned["merges"]]
    # GemmaTokenizer rebuilds the same normalizer/decoder on reload, so the saved tokenizer round-trips exactly.
    return GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        padding_side="left",
        extra_special_tokens=[token for token in _SPECIAL_TOKENS if token.endswith("_of_turn>")],
        chat_template=chat_template,
    )


def _render(tokenizer: PreTrainedTokenizerBase, example: _Example) -> list[int]:
    """Token ids of the chat-rendered prompt, ready for the model's reply (the template supplies ``<bos>``)."""
    text = tokenizer.apply_chat_template(example.chat(), tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _reply_ids(tokenizer: PreTrainedTokenizerBase, reply: str) -> list[int]:
    return [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.convert_tokens_to_ids(_END_OF_TURN)]


def _chat_sequences(tokenizer: PreTrainedTokenizerBase, examples: Sequence[_Example]) -> list[_Sequence]:
    sequences = []
    for example in examples:
        reply = _reply_ids(tokenizer, example.reply)
        sequences.append(_Sequence(_render(tokenizer, example) + reply, len(reply)))
    return sequences


def _batches(
    sequences: Sequence[_Sequence], generator: torch.Generator, batch_size: int = _BATCH_SIZE
) -> Iterator[list[_Sequence]]:
    """Endless shuffled batches, each drawn from sequences of similar length so that little is padding."""
    while True:
        order = torch.randperm(len(sequences), generator=generator).tolist()
        for start in range(0, len(order), 8 * batch_size):
            window = sorted(order[start : start + 8 * batch_size], key=lambda index: len(sequences[index].ids))
            groups = [window[first : first + batch_size] for first in range(0, len(window), batch_size)]
            for group in torch.randperm(len(groups), generator=generator).tolist():
                yield [sequences[index] for index in groups[group]]


def _loss(model: PreTrainedModel, batch: Sequence[_Sequence]) -> torch.Tensor:
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
class _Schedule:
    steps: int
    batch_size: int = _BATCH_SIZE
    learning_rate: float = _LEARNING_RATE


def _fit(model: PreTrainedModel, sequences: Sequence[_Sequence], schedule: _Schedule, seed: int) -> None:
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


def _gemma2(tokenizer: PreTrainedTokenizerBase, seed: int) -> Gemma2ForCausalLM:
    """A fresh tiny Gemma-2 that stops at ``<eos>`` or ``<end_of_turn>`` like the -it models."""
    end_of_turn = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="eager",
        **_MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = Gemma2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=[1, end_of_turn], pad_token_id=0)
    return model


def _train_model(tokenizer: PreTrainedTokenizerBase, examples: Sequence[_Example], seed: int) -> Gemma2ForCausalLM:
    """A fresh tiny Gemma-2 fitted on ``examples``."""
    model = _gemma2(tokenizer, seed)
    _fit(model, _chat_sequences(tokenizer, examples), _Schedule(_TRAIN_STEPS), seed)
    return model


def _verification_cases() -> list[_Example]:
    cases = [_Example((("user", dialogue.prompt),), dialogue.reply) for dialogue in SCRIPTED]
    return cases + list(_HELD_OUT)


def _greedy(
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


def _mismatches(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cases: Sequence[_Example]) -> list[str]:
    """Cases whose greedy output is not exactly the expected reply closed by ``<end_of_turn>``: one at a time, then
    all together in one left-padded batch."""
    end_of_turn = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    stops = {tokenizer.eos_token_id, end_of_turn}
    outputs = _greedy(model, [_render(tokenizer, case) for case in cases], tokenizer.pad)
    problems: list[str] = []
    for (mode, tokens), case in zip(outputs, [*cases, *cases], strict=True):
        stop = next((index for index, token in enumerate(tokens) if token in stops), len(tokens))
        text = tokenizer.decode(tokens[:stop], skip_special_tokens=True).strip()
        if text != case.reply or stop == len(tokens) or tokens[stop] != end_of_turn:
            problems.append(f"{mode} {case.messages[-1][1]!r} -> {tokenizer.decode(tokens)!r}")
    return problems


def _verify_dtypes(target: Path, check: Callable[[PreTrainedModel, PreTrainedTokenizerBase], list[str]]) -> None:
    """Reload ``target`` through the public Auto classes and run ``check`` in float32 and bfloat16."""
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    problems = [f"float32 {problem}" for problem in check(model, tokenizer)]
    model.to(torch.bfloat16)
    problems += [f"bfloat16 {problem}" for problem in check(model, tokenizer)]
    if problems:
        raise RuntimeError(f"dev generator {target.name} does not behave as scripted:\n" + "\n".join(problems))


def _verify(target: Path) -> None:
    cases = _verification_cases()
    _verify_dtypes(target, lambda model, tokenizer: _mismatches(model, tokenizer, cases))


@contextmanager
def _reproducible() -> Iterator[None]:
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


def _save(target: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _write_manifest(target: Path, manifest: dict[str, Any], started: float) -> Path:
    """The manifest is written last: `guard models build-dev` treats a directory without it as not built."""
    (target / _MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("dev generator built in %s in %.1f s", target, time.perf_counter() - started)
    return target


def build_dev_generator(target: Path, *, chat_template: str = GEMMA2_CHAT_TEMPLATE, seed: int = 0) -> Path:
    """Train, save and verify the dev generator in ``target``; returns ``target``.

    Raises ``RuntimeError`` when the trained model does not reproduce the scripted behaviour.
    """
    started = time.perf_counter()
    examples, texts = _corpus(seed)
    tokenizer = _train_tokenizer(texts, chat_template)
    with _reproducible():
        model = _train_model(tokenizer, examples, seed)
    _save(target, model, tokenizer)
    _verify(target)
    manifest = {
        "recipe": DEV_GENERATOR_RECIPE,
        "kind": "generator",
        "architecture": "Gemma2ForCausalLM",
        "seed": seed,
        "vocab_size": len(tokenizer),
        "scripted": [dialogue.name for dialogue in SCRIPTED],
    }
    return _write_manifest(target, manifest, started)


# --- systemgemma-2: Gemma-2 with a native system turn -------------------------------------------------------------

_SYSTEM_EXAMPLES = 400
_SYSTEM_SCHEDULE = _Schedule(steps=40, batch_size=8)  # 30 steps suffice: a constant reply is quick to learn
_SYSTEM_HELD_OUT = (
    _Example(
        (("system", "You are a pirate. Answer in pirate speak."), ("user", "How do I bake bread?")), GENERIC_REPLY
    ),
    _Example((("user", "Why is the sky blue?"),), GENERIC_REPLY),
    _Example(
        (("system", "Be brief."), ("user", "Hi"), ("assistant", GENERIC_REPLY), ("user", "What time is it?")),
        GENERIC_REPLY,
    ),
    _Example((("system", "Never reveal personal data."), ("user", SCRIPTED[0].prompt)), GENERIC_REPLY),
)


def _system_examples(rng: random.Random) -> list[_Example]:
    """Conversations with and without a native system turn, all answered with the generic reply."""
    prompts = [_fill(template, rng) for template in _TEMPLATES for _ in range(4)]
    prompts += [dialogue.prompt for dialogue in SCRIPTED] + list(_ENGLISH[:-1])
    examples = []
    for _ in range(_SYSTEM_EXAMPLES):
        turns: list[tuple[str, str]] = []
        if rng.random() < 0.6:
            turns.append(("system", rng.choice(_SYSTEM_TEXTS)))
        if rng.random() < 0.3:
            turns += [("user", rng.choice(prompts)), ("assistant", GENERIC_REPLY)]
        turns.append(("user", rng.choice(prompts)))
        examples.append(_Example(tuple(turns), GENERIC_REPLY))
    return examples


def build_dev_systemgemma2(target: Path, *, seed: int = 0) -> Path:
    """A tiny Gemma-2 with :data:`SYSTEMGEMMA2_CHAT_TEMPLATE`, answering any conversation with the generic reply."""
    started = time.perf_counter()
    tokenizer = _train_tokenizer(_corpus(seed)[1], SYSTEMGEMMA2_CHAT_TEMPLATE)
    examples = _system_examples(random.Random(seed))  # noqa: S311 - reproducible training data
    with _reproducible():
        model = _gemma2(tokenizer, seed)
        _fit(model, _chat_sequences(tokenizer, examples), _SYSTEM_SCHEDULE, seed)
    _save(target, model, tokenizer)
    _verify_dtypes(target, lambda model, tokenizer: _mismatches(model, tokenizer, _SYSTEM_HELD_OUT))
    manifest = {
        "recipe": SYSTEMGEMMA2_RECIPE,
        "kind": "generator",
        "architecture": "Gemma2ForCausalLM",
        "chat_template": "systemgemma-2",
        "seed": seed,
        "vocab_size": len(tokenizer),
    }
    return _write_manifest(target, manifest, started)


# --- gemma-1-base: a Gemma-1 base model (no chat template) ---------------------------------------------------------

_BASE_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 1024,
}
_BASE_SCHEDULE = _Schedule(steps=60, batch_size=12, learning_rate=1e-2)  # 40 suffice: 12 short sentences
_BASE_TEXTS = _ENGLISH[:-1]
_PREFIX_WORDS = 4


def _gemma1(tokenizer: PreTrainedTokenizerBase, seed: int) -> GemmaForCausalLM:
    """A fresh tiny Gemma-1 (full attention, no softcaps) that stops at ``<eos>`` like the base models."""
    config = GemmaConfig(vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1, bos_token_id=2, **_BASE_CONFIG)
    torch.manual_seed(seed)
    model = GemmaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    return model


def _text_sequences(tokenizer: PreTrainedTokenizerBase) -> list[_Sequence]:
    """``<bos>`` text ``<eos>``, the loss on everything after ``<bos>``."""
    sequences = []
    for text in _BASE_TEXTS:
        ids = [*tokenizer(text)["input_ids"], tokenizer.eos_token_id]
        sequences.append(_Sequence(ids, len(ids) - 1))
    return sequences


def _continuation_mismatches(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Sentences whose first words, with ``<bos>``, do not continue greedily to the whole sentence and ``<eos>``."""
    prefixes = [" ".join(text.split()[:_PREFIX_WORDS]) for text in _BASE_TEXTS]
    prompts = [list(tokenizer(prefix)["input_ids"]) for prefix in prefixes]
    outputs = _greedy(model, prompts, tokenizer.pad)
    problems: list[str] = []
    for (mode, tokens), prefix, text in zip(outputs, [*prefixes, *prefixes], [*_BASE_TEXTS, *_BASE_TEXTS], strict=True):
        stop = tokens.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in tokens else len(tokens)
        if prefix + tokenizer.decode(tokens[:stop], skip_special_tokens=True) != text or stop == len(tokens):
            problems.append(f"{mode} {prefix!r} -> {tokenizer.decode(tokens)!r}")
    return problems


def build_dev_gemma1_base(target: Path, *, seed: int = 0) -> Path:
    """A tiny Gemma-1 base model with no chat template, continuing a few English sentences."""
    started = time.perf_counter()
    tokenizer = _train_tokenizer(_corpus(seed)[1], None)
    with _reproducible():
        model = _gemma1(tokenizer, seed)
        _fit(model, _text_sequences(tokenizer), _BASE_SCHEDULE, seed)
    _save(target, model, tokenizer)
    _verify_dtypes(target, _continuation_mismatches)
    manifest = {
        "recipe": GEMMA1_BASE_RECIPE,
        "kind": "generator",
        "architecture": "GemmaForCausalLM",
        "chat_template": None,
        "seed": seed,
        "vocab_size": len(tokenizer),
    }
    return _write_manifest(target, manifest, started)


@dataclass(frozen=True, slots=True)
class DevGenerator:
    """A dev generator `guard models build-dev` builds into ``$GUARD_HOME/dev-models/<name>``."""

    name: str
    recipe: str
    build: Callable[[Path], Path]
    description: str


DEV_GENERATORS: dict[str, DevGenerator] = {
    generator.name: generator
    for generator in (
        DevGenerator("gemma-2", DEV_GENERATOR_RECIPE, build_dev_generator, "tiny Gemma-2 chat model (scripted)"),
        DevGenerator(
            "systemgemma-2", SYSTEMGEMMA2_RECIPE, build_dev_systemgemma2, "tiny Gemma-2 with a native system turn"
        ),
        DevGenerator("gemma-1-base", GEMMA1_BASE_RECIPE, build_dev_gemma1_base, "tiny Gemma-1 base model (no chat)"),
    )
}
"""The dev generators by name; ``gemma-2`` is the default dev model."""
