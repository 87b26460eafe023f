"""Property-based fuzzing of the JSON routes: whatever a client sends, the answer is never a 5xx."""

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
# Fields the routes know, with values that are often wrong; max_tokens stays small or invalid so
# that a valid request costs little.
small_or_bad = st.one_of(
    st.integers(-3, 3),
    st.text(max_size=3),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(10**9),
)
model = st.sampled_from(["gemma-3-270m", "shakespeare-char", "nope", "", "../x"]) | st.text(max_size=10)
completion_bodies = st.fixed_dictionaries(
    {"model": model, "max_tokens": small_or_bad},
    optional={
        "prompt": json_values,
        "temperature": json_values,
        "top_p": json_values,
        "n": small_or_bad,
        "stop": json_values,
        "seed": json_values,
        "logprobs": small_or_bad,
        "stream": st.booleans(),
        "top_k": json_values,
        "stream_options": json_values,
    },
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "bot"]), "content": json_values}
)
chat_bodies = st.fixed_dictionaries(
    {"model": model, "max_tokens": small_or_bad, "messages": st.lists(message, max_size=3) | json_values},
    optional={
        "response_format": json_values,
        "logprobs": json_values,
        "top_logprobs": small_or_bad,
        "stream": st.booleans(),
    },
)


def _check(url: str, body) -> None:
    r = httpx.post(url, json=body, timeout=60)
    assert r.status_code < 500, (body, r.status_code, r.text[:500])
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"message", "type"}


# Derandomised, so CI sees the same 60 bodies each run; the live server is a function-scoped fixture.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(body=completion_bodies | json_values)
def test_completions_never_answer_5xx(server, body):
    _check(f"{server.url}/v1/completions", body)


@FUZZ
@given(body=chat_bodies | json_values)
def test_chat_never_answers_5xx(server, body):
    _check(f"{server.url}/v1/chat/completions", body)
