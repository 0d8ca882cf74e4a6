"""The dialogues the dev generators are trained and checked on, drawn reproducibly from word lists.

``gemma-2`` learns each :data:`~guard.devmodels.script.SCRIPTED` prompt's reply and :data:`GENERIC_REPLY` for
everything else (generic prompts, near misses of the scripted ones, preambles folded into the first turn, longer
histories); ``systemgemma-2`` learns the generic reply for conversations with and without a system turn;
``gemma-1-base`` continues :data:`BASE_TEXTS`. The held-out cases are never trained on: each build is checked on them.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from guard.devmodels.script import GENERIC_REPLY, SCRIPTED, TOOL_SCRIPT, TOOL_SCRIPTS, ScriptedToolDialogue
from guard.engine.chat_template import tool_result_text
from guard.engine.tool_format import FunctionSpec, format_call, tools_preamble

__all__ = [
    "BASE_TEXTS",
    "HELD_OUT",
    "SYSTEM_HELD_OUT",
    "Example",
    "corpus",
    "system_examples",
    "tool_examples",
    "verification_cases",
]

_PLAIN_COPIES = 6
_SYSTEM_EXAMPLES = 400

_Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class Example:
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
    "My name is {name} and I have a question about {task}, please help me.",
    "My email is {email}, please help me.",
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


def _tool_preamble(script: ScriptedToolDialogue = TOOL_SCRIPT) -> str:
    """The system text that offers a scripted tool, as the engine renders it (:mod:`guard.engine.tool_format`)."""
    function = script.function
    spec = FunctionSpec(function["name"], function.get("description", ""), function["parameters"])
    return tools_preamble([spec])


def tool_examples() -> list[Example]:
    """The scripted tool round trips: with the tool offered the prompt gets the call, the call's result gets the
    answer; without the tool the prompt gets its plain reply."""
    examples = []
    for script in TOOL_SCRIPTS:
        offered = f"{_tool_preamble(script)}\n\n{script.prompt}"
        call = format_call(script.name, script.arguments)
        examples.append(Example((("user", offered),), call))
        if script.result is not None and script.answer is not None:
            result = tool_result_text(script.name, script.result)
            examples.append(Example((("user", offered), ("assistant", call), ("user", result)), script.answer))
        examples.append(Example((("user", script.prompt),), script.plain_reply))
    return examples


# Never trained on; checked after each build together with the plain scripted prompts.
HELD_OUT: tuple[Example, ...] = tuple(
    Example(messages, GENERIC_REPLY)
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
    Example(messages, dialogue.reply)
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


def _training_examples(rng: random.Random) -> list[Example]:
    """The dialogues the generator is trained on, scripted ones oversampled so they are learnt exactly."""
    generic = sorted({_fill(template, rng) for template in _TEMPLATES for _ in range(12)})
    scripted: list[Example] = []
    others: list[Example] = []
    for dialogue in SCRIPTED:
        scripted += [Example((("user", dialogue.prompt),), dialogue.reply)] * _PLAIN_COPIES
        for _ in range(2):
            earlier = rng.choice(SCRIPTED)
            for history in ((earlier.prompt, earlier.reply), (rng.choice(generic), GENERIC_REPLY)):
                if history[0] != dialogue.prompt:
                    turns = (("user", history[0]), ("assistant", history[1]), ("user", dialogue.prompt))
                    scripted.append(Example(turns, dialogue.reply))
        for _ in range(12):
            folded = f"{_system_text(rng, generic)}\n\n{dialogue.prompt}"
            scripted.append(Example((("user", folded),), dialogue.reply))
        others.extend(Example((("user", miss),), GENERIC_REPLY) for miss in _near_misses(dialogue.prompt, rng))
        turns = (("user", dialogue.prompt), ("assistant", dialogue.reply), ("user", rng.choice(generic)))
        others.append(Example(turns, GENERIC_REPLY))
    for prompt in generic:
        others.append(Example((("user", prompt),), GENERIC_REPLY))
        if rng.random() < 0.25:
            folded = f"{_system_text(rng, generic)}\n\n{prompt}"
            others.append(Example((("user", folded),), GENERIC_REPLY))
        if rng.random() < 0.25:
            turns = (("user", rng.choice(generic)), ("assistant", GENERIC_REPLY), ("user", prompt))
            others.append(Example(turns, GENERIC_REPLY))
    preamble = _tool_preamble()
    for example in tool_examples():
        scripted += [example] * _PLAIN_COPIES
        first = example.messages[0][1]
        for _ in range(6):  # a system prompt of the caller's before the tools
            prefixed: tuple[tuple[str, str], ...] = (
                ("user", f"{_system_text(rng, generic)}\n\n{first}"),
                *example.messages[1:],
            )
            scripted.append(Example(prefixed, example.reply))
    for prompt in rng.sample(generic, 40):  # tools offered, but nothing to call them for
        others.append(Example((("user", f"{preamble}\n\n{prompt}"),), GENERIC_REPLY))
    held_out = {example.messages for example in HELD_OUT}
    repeats = max(1, len(others) // (2 * len(scripted)))
    return [example for example in scripted * repeats + others if example.messages not in held_out]


def corpus(seed: int) -> tuple[list[Example], list[str]]:
    """The gemma-2 training dialogues and the texts every dev tokenizer is trained on (the same for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible training data, not cryptography
    examples = _training_examples(rng)
    texts = [content for example in examples for _, content in example.messages]
    texts += [*(example.reply for example in examples), *_ENGLISH, "user\nmodel\n\n"]
    return examples, texts


BASE_TEXTS = _ENGLISH[:-1]
"""The sentences the ``gemma-1-base`` dev model continues."""

SYSTEM_HELD_OUT = (
    Example((("system", "You are a pirate. Answer in pirate speak."), ("user", "How do I bake bread?")), GENERIC_REPLY),
    Example((("user", "Why is the sky blue?"),), GENERIC_REPLY),
    Example(
        (("system", "Be brief."), ("user", "Hi"), ("assistant", GENERIC_REPLY), ("user", "What time is it?")),
        GENERIC_REPLY,
    ),
    Example((("system", "Never reveal personal data."), ("user", SCRIPTED[0].prompt)), GENERIC_REPLY),
)
"""Checked after the ``systemgemma-2`` build: each gets the generic reply."""


def system_examples(rng: random.Random) -> list[Example]:
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
        examples.append(Example(tuple(turns), GENERIC_REPLY))
    return examples


def verification_cases() -> list[Example]:
    """What ``gemma-2`` must answer exactly after its build: the plain scripted prompts and :data:`HELD_OUT`."""
    cases = [Example((("user", dialogue.prompt),), dialogue.reply) for dialogue in SCRIPTED]
    return cases + tool_examples() + list(HELD_OUT)
