"""Tool calls, structured output and the Responses API with the clients agent frameworks use, against the real
`guard serve` (dev model): the official ``openai`` client (``tool_choice`` required / named / auto, parallel calls,
``chat.completions.parse`` with a Pydantic model, ``responses.create`` plain and streamed) and LangChain
(``bind_tools`` + ``ToolMessage`` loop, ``with_structured_output`` by all three methods)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from guard.devmodels.script import STRUCTURED_SCRIPT, TOOL_SCRIPT
from tests.conftest import ROOT
from tests.e2e.serving import Server, running_server

pytestmark = pytest.mark.e2e

TRIES = 20
MAX_TOKENS = 400
"""Enough for one call of the schema below at its longest (strings capped by ``maxLength``)."""
TICKET = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 24},
        "labels": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
        "owner": {
            "type": "object",
            "properties": {
                "team": {"type": "string", "enum": ["billing", "support", "it"]},
                "contact": {"type": "string", "maxLength": 20},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["team", "contact", "priority"],
            "additionalProperties": False,
        },
        "urgent": {"type": "boolean"},
    },
    "required": ["title", "labels", "owner", "urgent"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "open_ticket", "description": "Open a ticket.", "parameters": TICKET}},
    {"type": "function", "function": TOOL_SCRIPT.function},
]


class Ticket(BaseModel):
    """A support ticket."""

    title: str = Field(max_length=40)
    priority: int = Field(ge=1, le=5)


AGENT_POLICY = """\
# An agent's policy: the default one, with its own argument checks (no PII entity actions on generated arguments:
# the dev model's random argument text trips the NER's PERSON recognizer, and a placeholder can outgrow maxLength).
name: agent
version: "1.0.0"
extends: default
tools:
  denied: ["delete_*"]
  arguments:
    secrets:
      action: block
"""


@pytest.fixture(scope="module")
def server(guard_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    policies = tmp_path_factory.mktemp("policies") / "policies"
    shutil.copytree(ROOT / "policies", policies)
    (policies / "agent.yaml").write_text(AGENT_POLICY)
    with running_server(guard_home, tmp_path_factory.mktemp("tools"), GUARD_POLICY_DIR=str(policies)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.key, max_retries=0, timeout=300)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "open_ticket"}}])
def test_required_and_named_calls_validate_20_of_20_at_temperature_1(client: openai.OpenAI, choice: Any) -> None:
    """Under the agent policy (argument checks: secrets): what the grammar made reaches the caller unchanged."""
    valid = 0
    failures: list[Any] = []
    for _ in range(TRIES):
        completion = client.chat.completions.create(
            extra_headers={"X-Guard-Policy": "agent"},
            model="default",
            messages=[{"role": "user", "content": "The printer on floor 3 is broken again."}],
            tools=TOOLS,
            tool_choice=choice,
            parallel_tool_calls=False,  # one call per answer: how many parallel calls to make is the model's choice
            temperature=1,
            max_tokens=MAX_TOKENS,
        )
        answer = completion.choices[0]
        calls = answer.message.tool_calls or []
        if answer.finish_reason != "tool_calls" or not calls:  # a truncated or missing call is a failure
            failures.append((answer.finish_reason, (completion.model_extra or {})["guard"]["findings"]))
            continue
        ok = True
        for call in calls:
            arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
            if call.function.name == "open_ticket":  # type: ignore[union-attr]
                jsonschema.validate(arguments, TICKET)
            else:
                assert choice == "required"
                jsonschema.validate(arguments, TOOL_SCRIPT.function["parameters"])
        valid += ok
    assert valid == TRIES, failures


def test_auto_returns_the_scripted_call(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": TOOL_SCRIPT.prompt}],
        tools=[{"type": "function", "function": TOOL_SCRIPT.function}],
        temperature=0,
        max_tokens=64,
    )
    answer = completion.choices[0]
    assert answer.finish_reason == "tool_calls"
    [call] = answer.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == json.loads(TOOL_SCRIPT.arguments)  # type: ignore[union-attr]


def test_streamed_tool_call_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": TOOL_SCRIPT.prompt}],
        tools=[{"type": "function", "function": TOOL_SCRIPT.function}],
        temperature=0,
        max_tokens=64,
        stream=True,
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                arguments += (delta.function.arguments or "") if delta.function else ""
            finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(arguments) == json.loads(TOOL_SCRIPT.arguments)
    assert finish == "tool_calls"


def test_parse_returns_the_pydantic_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="default",
        messages=[{"role": "user", "content": STRUCTURED_SCRIPT.prompt}],
        response_format=Ticket,
        temperature=0,
        max_tokens=64,
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == Ticket.model_validate_json(STRUCTURED_SCRIPT.plain_reply)


def test_responses_create_plain_and_streamed(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="default", input=TOOL_SCRIPT.prompt, instructions="Be brief.", temperature=0, max_output_tokens=32
    )
    assert response.status == "completed"
    assert response.output_text
    guard = (response.model_extra or {})["guard"]
    assert guard["decision"] in ("allow", "flag")

    events = list(
        client.responses.create(
            model="default",
            input=[{"role": "user", "content": "Say hello to the team."}],
            temperature=0,
            max_output_tokens=32,
            stream=True,
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert text == "Hello team! Have a good day."

    called = client.responses.create(
        model="default",
        input=TOOL_SCRIPT.prompt,
        tools=[{"type": "function", **TOOL_SCRIPT.function}],  # type: ignore[list-item]
        temperature=0,
        max_output_tokens=64,
    )
    [item] = called.output
    assert item.type == "function_call"
    assert (item.name, json.loads(item.arguments)) == ("get_weather", json.loads(TOOL_SCRIPT.arguments))  # type: ignore[union-attr]

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="default", input="hi", store=True)
    assert caught.value.param == "store"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="default", input="hi", previous_response_id="resp_1")
    assert caught.value.param == "previous_response_id"


def _chat_model(server: Server) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model="default",
        base_url=f"{server.base}/v1",
        api_key=server.key,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=64,  # type: ignore[call-arg]
        max_retries=0,
    )


def test_langchain_bind_tools_and_tool_message_loop(server: Server) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return TOOL_SCRIPT.result or ""

    model = _chat_model(server).bind_tools([{"type": "function", "function": TOOL_SCRIPT.function}])
    messages: list[Any] = [HumanMessage(TOOL_SCRIPT.prompt)]
    first = model.invoke(messages)
    assert isinstance(first, AIMessage)
    [call] = first.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", json.loads(TOOL_SCRIPT.arguments))
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    second = model.invoke(messages)
    assert second.content == TOOL_SCRIPT.answer


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_langchain_with_structured_output(server: Server, method: str) -> None:
    structured = _chat_model(server).with_structured_output(Ticket, method=method)  # type: ignore[arg-type]
    assert structured.invoke(STRUCTURED_SCRIPT.prompt) == Ticket.model_validate_json(STRUCTURED_SCRIPT.plain_reply)
