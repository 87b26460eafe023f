"""The one streamed tool-call parser (chat completions and Responses): a text answer streams as it
comes, a call is held and parsed whole when its choice ends, a call cut short is sent as text."""

from genlab.core.chat import ToolCallStream, Turn

WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def turn(tools=WEATHER) -> Turn:
    return Turn(request=None, tools=tools)


def test_a_text_answer_streams_as_it_comes_even_where_a_later_piece_opens_with_a_bracket():
    parser = ToolCallStream(turn())
    assert [parser.feed(t) for t in ("It is", " sunny", "<b>", " today")] == [
        "It is",
        " sunny",
        "<b>",
        " today",
    ]
    assert parser.finish("stop") == (None, [], "stop")


def test_a_call_is_held_then_parsed_whole():
    parser = ToolCallStream(turn())
    pieces = ['<tool_call>{"name": "weather", ', '"arguments": {"city": "Paris"}}', "</tool_call>"]
    assert all(parser.feed(p) == "" for p in pieces)
    held, calls, finish = parser.finish("stop")
    assert held is None and finish == "tool_calls"
    assert calls[0]["function"]["name"] == "weather" and '"Paris"' in calls[0]["function"]["arguments"]


def test_a_call_cut_by_max_tokens_is_sent_as_the_text_it_was():
    parser = ToolCallStream(turn())
    parser.feed('<tool_call>{"name": "wea')
    assert parser.finish("length") == ('<tool_call>{"name": "wea', [], "length")


def test_without_tools_nothing_is_held():
    parser = ToolCallStream(turn(tools=None))
    assert parser.feed("<tool_call>{}") == "<tool_call>{}" and parser.finish("stop") == (None, [], "stop")
