"""Chat templates of the Gemma family, as pure functions over a transformers tokenizer.

Three families are served: Gemma-2 chat models (2b/9b/27b-it, 2b-jpn-it) whose template has no system role,
SystemGemma2-style chat models whose template renders a native ``<start_of_turn>system`` turn, and base models
(Gemma-1 gemma-mling, Gemma-2 pretrained) with no chat template, served through ``/v1/completions`` only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from typing import Any

from guard.engine.base import ChatMessage, InvalidConversation
from guard.engine.tool_format import FunctionSpec, tools_preamble

__all__ = [
    "TemplateKind",
    "control_tokens",
    "describe_template",
    "render_chat",
    "supports_system_role",
    "template_kind",
    "tool_result_text",
    "with_tools",
]

# A probe the template must echo: a template that accepts a system message but drops it has no system role.
_SYSTEM_PROBE = "guard-system-probe"
_ERROR_LENGTH = 200


class TemplateKind(StrEnum):
    """How a tokenizer's chat template treats a conversation."""

    GEMMA2 = "gemma-2"
    """Chat without a system role (Gemma-2 -it): system text is folded into the first user turn."""
    SYSTEM_ROLE = "system-role"
    """Chat with a native system turn (SystemGemma2-style)."""
    NONE = "none"
    """No chat template: a base model, served through /v1/completions only."""


_DESCRIPTIONS = {
    TemplateKind.GEMMA2: "Gemma-2 chat template without a system role (system text folded into the first user turn)",
    TemplateKind.SYSTEM_ROLE: "chat template with a native system turn (SystemGemma2-style)",
    TemplateKind.NONE: "no chat template (base model: use /v1/completions)",
}


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the chat template renders a leading system message (probed: templates do not declare it)."""
    if not tokenizer.chat_template:
        return False
    probe = [{"role": "system", "content": _SYSTEM_PROBE}, {"role": "user", "content": "u"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # templates reject a system role with raise_exception, whatever its type
        return False
    return _SYSTEM_PROBE in str(rendered)


def template_kind(tokenizer: Any) -> TemplateKind:
    if not tokenizer.chat_template:
        return TemplateKind.NONE
    return TemplateKind.SYSTEM_ROLE if supports_system_role(tokenizer) else TemplateKind.GEMMA2


def describe_template(tokenizer: Any) -> str:
    """One line for the startup log and /readyz."""
    return _DESCRIPTIONS[template_kind(tokenizer)]


def tool_result_text(name: str | None, content: str) -> str:
    """A tool's result as the user turn Gemma sees (its template has no tool role)."""
    return f"[tool result{f' from {name}' if name else ''}]\n{content}"


def _tool_result(message: ChatMessage) -> str:
    return tool_result_text(message.name, message.content)


def _turns(messages: list[ChatMessage], system_role: bool) -> list[dict[str, str]]:
    """Template input, as OpenAI accepts conversations: leading system messages become the system turn (or are
    folded into the first user turn); a later system message is folded into the next user turn (or stands as one);
    tool results are user turns; consecutive turns of one speaker are joined so that roles alternate."""
    leading = next((index for index, message in enumerate(messages) if message.role != "system"), len(messages))
    system = "\n\n".join(message.content for message in messages[:leading])
    turns: list[dict[str, str]] = []
    pending = [] if system_role else [system] if system else []  # system text waiting for its user turn
    if system and system_role:
        turns.append({"role": "system", "content": system})
    for message in messages[leading:]:
        if message.role == "system":
            pending.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content = _tool_result(message) if message.role == "tool" else message.content
        if role == "user":
            content, pending = "\n\n".join([*pending, content]), []
        elif pending:
            turns.append({"role": "user", "content": "\n\n".join(pending)})
            pending = []
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + content
        else:
            turns.append({"role": role, "content": content})
    if pending:  # system text last (or alone): the user turn the model answers
        if turns and turns[-1]["role"] == "user":
            turns[-1]["content"] += "\n\n" + "\n\n".join(pending)
        else:
            turns.append({"role": "user", "content": "\n\n".join(pending)})
    if not any(turn["role"] == "user" for turn in turns):
        raise InvalidConversation("the conversation needs a user message")
    return turns


@cache
def _control_pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special tokens (``<bos>``, ``<start_of_turn>``, ``<unusedN>``...) as they appear in text."""
    special = {str(t.content) for t in tokenizer.added_tokens_decoder.values() if t.special}
    return tuple(sorted(special | set(tokenizer.all_special_tokens)))


def _reject_control_tokens(tokenizer: Any, messages: list[ChatMessage]) -> None:
    """Message text that spells a control token would be tokenized as that token: a caller could forge a turn
    (``<end_of_turn>\n<start_of_turn>model``) around the policy. Such messages are refused, never rewritten."""
    pattern = _control_pattern(control_tokens(tokenizer))
    for index, message in enumerate(messages):
        if found := pattern.search(message.content) or pattern.search(message.name or ""):
            raise InvalidConversation(f"message {index} contains the reserved control token {found.group()}")


def with_tools(messages: list[ChatMessage], tools: Sequence[FunctionSpec]) -> list[ChatMessage]:
    """``messages`` with the offered functions (:func:`~guard.engine.tool_format.tools_preamble`) as a system text
    after the caller's leading system messages (Gemma-2 folds them all into the first user turn, in that order)."""
    if not tools:
        return messages
    leading = next((index for index, message in enumerate(messages) if message.role != "system"), len(messages))
    offer = ChatMessage(role="system", content=tools_preamble(tools))
    return [*messages[:leading], offer, *messages[leading:]]


def render_chat(
    tokenizer: Any,
    messages: list[ChatMessage],
    *,
    system_role: bool | None = None,
    tools: Sequence[FunctionSpec] = (),
) -> str:
    """The prompt text for ``messages``, ending with the generation prompt, or, when the last message is the
    assistant's, inside that turn so that the model continues it; raises :class:`InvalidConversation`.
    ``tools`` are offered to the model in the format of :mod:`guard.engine.tool_format`.

    ``system_role`` is :func:`supports_system_role` (probed when ``None``; pass it to skip the probe per request).
    The text starts with the template's ``<bos>``: tokenize it with ``add_special_tokens=False``."""
    if not tokenizer.chat_template:
        raise InvalidConversation("this model has no chat template: use /v1/completions")
    _reject_control_tokens(tokenizer, messages)
    if system_role is None:
        system_role = supports_system_role(tokenizer)
    turns = _turns(with_tools(messages, tools), system_role)
    continues = turns[-1]["role"] == "assistant"
    try:
        return str(
            tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=not continues, continue_final_message=continues
            )
        )
    except Exception as exc:  # a template's raise_exception (e.g. roles must alternate) is the message
        raise InvalidConversation(str(exc).splitlines()[0][:_ERROR_LENGTH]) from None
