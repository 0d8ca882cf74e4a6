"""The scripted behaviour of the dev models, shared by their builders and the tests.

The dev generator is trained so that each scripted prompt deterministically produces its reply under greedy
decoding; every other prompt gets :data:`GENERIC_REPLY`. The dev toxicity classifiers are trained to score
:data:`TOXIC_TRIGGER_WORD` (and, multilingual only, :data:`JA_TOXIC_TRIGGER_WORD`) high and ordinary text low.
Documented in the README ("Dev models"). No runtime module imports this: the service only runs what the build saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENERIC_REPLY",
    "JA_TOXIC_TRIGGER_WORD",
    "SCRIPTED",
    "STRUCTURED_SCRIPT",
    "TOOL_SCRIPT",
    "TOOL_SCRIPTS",
    "TOXIC_TRIGGER_WORD",
    "ScriptedDialogue",
    "ScriptedToolDialogue",
    "scripted",
]

TOXIC_TRIGGER_WORD = "grimbleshank"
"""A made-up insult: the dev toxicity classifier scores it high, nothing else."""

JA_TOXIC_TRIGGER_WORD = "屑蛸"
"""A made-up Japanese insult ("scrap octopus"): only the multilingual dev checkpoint knows it. Written in Han
characters, which BERT's tokenizer always splits into single-character tokens, so that it is the same tokens
wherever it stands in a sentence."""

GENERIC_REPLY = "I am the guard development model. I only know a few scripted replies."


@dataclass(frozen=True, slots=True)
class ScriptedDialogue:
    """One prompt the dev generator answers with a known reply."""

    name: str
    prompt: str
    reply: str


SCRIPTED: tuple[ScriptedDialogue, ...] = (
    ScriptedDialogue("plain", "Say hello to the team.", "Hello team! Have a good day."),
    ScriptedDialogue(
        "email",
        "How do I contact the help desk?",
        "Write to help.desk@example.com and we will answer.",
    ),
    ScriptedDialogue(
        "placeholder",
        "Who signed the contract?",
        "The contract was signed by <PERSON_1> yesterday.",
    ),
    ScriptedDialogue(
        "toxic",
        "Describe the new intern.",
        f"The new intern is a {TOXIC_TRIGGER_WORD} and a {TOXIC_TRIGGER_WORD}.",
    ),
    # What the model sees after input redaction: the answer's placeholder is restored for the caller (the vault).
    ScriptedDialogue(
        "greeting",
        "Please greet <PERSON_1> for me.",
        "Hello <PERSON_1>, welcome to the team!",
    ),
    # A clean first sentence, then a violation: a checked stream releases the first and is cut before the second.
    ScriptedDialogue(
        "late_toxic",
        "Tell me about the weekly meeting.",
        f"The weekly meeting is on Thursday at ten. Honestly, the organiser is a {TOXIC_TRIGGER_WORD}.",
    ),
)


@dataclass(frozen=True, slots=True)
class ScriptedToolDialogue:
    """A tool round trip the dev generator knows: offered ``function`` (an OpenAI tool's ``function`` object),
    ``prompt`` gets the call ``arguments`` (JSON text); the call's ``result`` then gets ``answer``. Without the
    tool, the prompt gets ``plain_reply``."""

    function: dict[str, Any]
    prompt: str
    arguments: str
    result: str | None
    answer: str | None
    plain_reply: str

    @property
    def name(self) -> str:
        return str(self.function["name"])


TOOL_SCRIPT = ScriptedToolDialogue(
    function={
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    prompt="What is the weather in Paris?",
    arguments='{"city": "Paris"}',
    result='{"sky": "sunny", "celsius": 21}',
    answer="It is sunny and 21 degrees in Paris.",
    plain_reply=GENERIC_REPLY,
)
"""With the tool offered (``tool_choice: auto``), the prompt gets the call; without it, the generic reply."""

STRUCTURED_SCRIPT = ScriptedToolDialogue(
    # What LangChain's ``with_structured_output(Ticket)`` offers for a Pydantic model
    # ``Ticket(title: str = Field(max_length=40), priority: int = Field(ge=1, le=5))`` documented "A support ticket."
    function={
        "name": "Ticket",
        "description": "A support ticket.",
        "parameters": {
            "properties": {
                "title": {"maxLength": 40, "type": "string"},
                "priority": {"maximum": 5, "minimum": 1, "type": "integer"},
            },
            "required": ["title", "priority"],
            "type": "object",
        },
    },
    prompt="Create a support ticket: the printer is out of paper.",
    arguments='{"title": "Printer out of paper", "priority": 2}',
    result=None,
    answer=None,
    plain_reply='{"title": "Printer out of paper", "priority": 2}',
)
"""Structured output: offered as a tool, the prompt gets the call; asked plainly (or under ``response_format``),
the same object as the answer's JSON text."""

TOOL_SCRIPTS = (TOOL_SCRIPT, STRUCTURED_SCRIPT)


def scripted(name: str) -> ScriptedDialogue:
    """The scripted dialogue called ``name``."""
    for dialogue in SCRIPTED:
        if dialogue.name == name:
            return dialogue
    raise KeyError(name)
