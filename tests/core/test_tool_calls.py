"""Tool calls that end: what the model may call after a result, and the parallel calls kept."""

import json

import pytest

from genlab.core.chat import NO_CALL_GRAMMAR, Turn, answer, plan
from genlab.core.request import SamplingParams

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}


def calls_text(*arguments) -> str:
    return "\n".join(
        f"<tool_call>{json.dumps({'name': 'weather', 'arguments': a})}</tool_call>" for a in arguments
    )


def test_a_parallel_call_whose_required_arguments_are_empty_is_not_emitted():
    turn = Turn(request=None, tools=[WEATHER])
    _, calls, finish = answer(turn, calls_text({"city": "Oslo"}, {"city": ""}, {}, {"city": "Rome"}), "stop")
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert finish == "tool_calls"


@pytest.fixture(scope="module")
def model(registry):
    return registry.load("smollm2-135m-instruct")


def test_after_a_result_auto_may_call_only_functions_not_just_answered(model):
    asked = [{"role": "user", "content": "Weather in Oslo?"}]
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
    }
    follow = [
        *asked,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "9 C"},
    ]
    params = SamplingParams(max_tokens=8)
    only_weather = plan(model, follow, params, model="m", tools=[WEATHER])
    assert only_weather.request.params.grammar == NO_CALL_GRAMMAR and only_weather.tools == [WEATHER]
    chain = plan(model, follow, params, model="m", tools=[WEATHER, CLOCK])
    assert '"const": "clock"' in chain.request.params.grammar
    assert '"const": "weather"' not in chain.request.params.grammar
    before = plan(model, asked, params, model="m", tools=[WEATHER])
    assert '"const": "weather"' in before.request.params.grammar
    named = plan(
        model,
        follow,
        params,
        model="m",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "weather"}},
    )
    assert '("\\n" call)*' not in named.request.params.grammar  # exactly one call
