"""An LLM judge, optional: a scanner that asks a registered chat model for a verdict in Llama
Guard's prompt format (Meta's Llama Guard 3: the MLCommons hazard categories S1-S14).

A user who adds a Llama Guard GGUF (``genlab models pull QuantFactory/Llama-Guard-3-1B-GGUF``, say)
names it in a policy::

    input:
      - scanner: llm_judge
        model: llama-guard-3-1b
        action: block

and every checked text is wrapped in Llama Guard's prompt (the categories, the conversation, the
instruction to answer ``safe`` or ``unsafe`` and the violated categories), rendered in the model's
own chat template, and answered under a grammar that only allows a well-formed verdict, so the
answer always parses. It is off by default: each check is one model call (a second or more on a
CPU for a 1B judge; see docs/guardrails.md). Any chat model can be the judge (the tests use the
shipped SmolLM2-135M-Instruct for the plumbing; its verdicts are not worth much).

The safety room does not load models: the pipeline hands this module the registry's loader
(:func:`use_models`) when it starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from genlab.core import InvalidRequestError, SamplingParams
from genlab.core.chat import TRANSCRIPT, render
from genlab.core.request import GenerationRequest
from genlab.safety.guardrails import HAZARDS, SCANNERS, Finding, Scanner

_LOAD: list[Callable[[str], Any]] = []  # the registry's loader, set by the pipeline
VERDICT_GRAMMAR = 'root ::= "safe" | "unsafe\\n" cat ("," cat)*\ncat ::= "S" [1-9] | "S1" [0-4]\n'
PROMPT = """Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{speaker}: {text}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""


def use_models(load: Callable[[str], Any]) -> None:
    """The pipeline's way of giving the judge models (the safety room does not import the registry)."""
    _LOAD[:] = [load]


def guard_prompt(text: str, *, role: str = "User") -> str:
    """Llama Guard 3's prompt for one message (``role`` User for inputs, Agent for outputs)."""
    categories = "\n".join(f"{code}: {name}." for code, name in HAZARDS.items())
    return PROMPT.format(role=role, categories=categories, speaker=role, text=text)


def parse_verdict(answer: str) -> tuple[bool, list[str]]:
    """(unsafe, categories) from Llama Guard's answer; anything else is an error, never "safe"."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if lines and lines[0].lower() == "safe":
        return False, []
    if lines and lines[0].lower() == "unsafe":
        codes = re.findall(r"S\d{1,2}", lines[1] if len(lines) > 1 else "")
        return True, [c for c in codes if c in HAZARDS] or ["S1"]
    raise InvalidRequestError(f"the judge answered {answer[:60]!r}, not a Llama Guard verdict")


class LLMJudgeScanner(Scanner):
    """The judge as a guardrail scanner: an unsafe verdict is a finding over the whole text."""

    name = "llm_judge"
    default_category = "unsafe"
    normalizes: ClassVar[bool] = False
    in_process: ClassVar[bool] = True  # it asks this process's models
    judges_intent: ClassVar[bool] = True  # not run on the caller's own system message

    def __init__(self, threshold: float = 0.5, **options: Any) -> None:
        super().__init__(threshold, **options)
        if not options.get("model"):
            raise InvalidRequestError(
                "the llm_judge scanner needs a model: the name of a registered chat model"
            )

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        if not _LOAD:
            raise InvalidRequestError(
                "the llm_judge scanner runs inside genlab's pipeline (no model loader is set)"
            )
        judge = _LOAD[0](self.options["model"])
        role = "Agent" if prompt is not None else "User"
        messages = [{"role": "user", "content": guard_prompt(text, role=role)}]
        chat_prompt, _ = render(messages, getattr(judge, "chat_format", TRANSCRIPT))
        params = SamplingParams(max_tokens=16, temperature=0.0, grammar=VERDICT_GRAMMAR, repeat_penalty=1.0)
        answer = judge.generate(GenerationRequest(prompt=chat_prompt, params=params).validate())[0].text
        unsafe, codes = parse_verdict(answer)
        if not unsafe:
            return []
        names = ", ".join(f"{c} {HAZARDS[c]}" for c in codes)
        return [
            Finding(
                self.name,
                codes[0],
                0,
                len(text),
                0.9,
                f"{self.options['model']} judged it unsafe: {names}",
                text[:200],
            )
        ]


SCANNERS[LLMJudgeScanner.name] = LLMJudgeScanner
