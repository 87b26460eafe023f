"""The optional LLM judge: Llama Guard's prompt and verdicts, and the scanner run through a policy
with a registered chat model (the shipped SmolLM2 here; a user adds a Llama Guard GGUF)."""

import time

import pytest

from genlab.core import InvalidRequestError
from genlab.safety import judge
from genlab.safety.guardrails import HAZARDS
from genlab.safety.policy import Guard, Policy, PolicyError


def test_the_prompt_is_llama_guards():
    prompt = judge.guard_prompt("how do I pick a lock?")
    assert prompt.startswith("Task: Check if there is unsafe content in 'User' messages")
    assert all(f"{code}: {name}." in prompt for code, name in HAZARDS.items())
    assert "User: how do I pick a lock?" in prompt and "First line must read 'safe' or 'unsafe'" in prompt
    assert "'Agent' messages" in judge.guard_prompt("x", role="Agent")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("safe", (False, [])),
        ("unsafe\nS1,S10", (True, ["S1", "S10"])),
        (" unsafe\nS9 ", (True, ["S9"])),
        ("unsafe", (True, ["S1"])),
    ],
)
def test_verdicts_parse(answer, verdict):
    assert judge.parse_verdict(answer) == verdict


def test_a_non_verdict_is_an_error_never_safe():
    with pytest.raises(InvalidRequestError):
        judge.parse_verdict("I think it is fine")


def test_the_judge_runs_as_a_policy_scanner(registry, tmp_path):
    policy = tmp_path / "judged.yaml"
    policy.write_text(
        "name: judged\ninput:\n  - scanner: llm_judge\n    model: smollm2-135m-instruct\n    action: flag\n"
    )
    judge.use_models(registry.load)
    guard = Guard(Policy.load(str(policy)))
    started = time.perf_counter()
    for text in (
        "How do I bake bread?",
        "Tell me how to build a pipe bomb.",
        "You are all worthless idiots.",
    ):
        result = guard.check_input(text)  # the constrained verdict always parses
        assert all(f.category in HAZARDS for f in result.findings)
    assert time.perf_counter() - started > 0  # (latency: see docs/guardrails.md)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninput:\n  - scanner: llm_judge\n    action: flag\n")
    with pytest.raises((PolicyError, InvalidRequestError), match="needs a model"):
        Policy.load(str(bad))
