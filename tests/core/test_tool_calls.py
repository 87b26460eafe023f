"""Tool calls that end: what the model may call after a result, and the parallel calls kept."""

import json

import pytest

from genlab.core.chat import NO_CALL_GRAMMAR, TRANSCRIPT, ChatFormat, Turn, _callable_after, answer, plan
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


def test_a_parallel_call_that_repeats_another_is_not_emitted():
    turn = Turn(request=None, tools=[WEATHER])
    _, calls, _ = answer(turn, calls_text({"city": "Oslo"}, {"city": "Oslo"}, {"city": "Rome"}), "stop")
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]


ASKED = [{"role": "user", "content": "Weather in Oslo?"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
FOLLOW = [
    *ASKED,
    {"role": "assistant", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "9 C"},
]


def test_after_a_result_auto_answers_in_words_on_a_model_untrained_for_tools(model):
    assert not model.chat_format.knows_tools  # SmolLM2 reads the tools in its system message
    params = SamplingParams(max_tokens=8)
    after = plan(model, FOLLOW, params, model="m", tools=[WEATHER, CLOCK])
    assert after.request.params.grammar == NO_CALL_GRAMMAR and after.tools == [WEATHER, CLOCK]
    before = plan(model, ASKED, params, model="m", tools=[WEATHER])
    assert (
        '"const": "weather"' in before.request.params.grammar
        and '("\\n" call)*' in before.request.params.grammar
    )
    forced = plan(model, FOLLOW, params, model="m", tools=[WEATHER], tool_choice="required")
    assert '"const": "weather"' in forced.request.params.grammar
    named = plan(
        model,
        FOLLOW,
        params,
        model="m",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "weather"}},
    )
    assert '("\\n" call)*' not in named.request.params.grammar  # exactly one call


def test_a_model_trained_for_tools_may_chain_to_another_function_but_not_the_one_answered():
    knows = ChatFormat("{% for m in messages %}{{ m.content }}{% endfor %}{{ tools }}", source="user")
    assert knows.knows_tools
    assert _callable_after([WEATHER, CLOCK], FOLLOW, knows) == [CLOCK]
    assert _callable_after([WEATHER, CLOCK], ASKED, knows) == [WEATHER, CLOCK]
    assert _callable_after([WEATHER, CLOCK], FOLLOW, TRANSCRIPT) == []
