"""Chat quality and speed: the shipped instruct model in its own template, the same model through
the plain transcript, and Gemma base through the transcript, on an instruction set graded
automatically.

The set (written for genlab, below): 16 short factual questions (graded by the expected word),
14 formatting instructions (graded by a rule: one word, upper case, a list of N, a number ...),
12 JSON extractions (with a JSON Schema as the response format; graded by the extracted values) and
12 tool selections (four functions, tool_choice "required"; graded by the function chosen; every
call's arguments must parse and validate: validity is reported and must be 100%). Greedy decoding,
one run (deterministic on one machine). Prints a table and writes bench/results/chat.json.

    python bench/chat.py [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import sys
import time
from pathlib import Path

import jsonschema
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "chat.json"

FACTS = [
    ("What is the capital of France?", "paris"),
    ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of Italy?", "rome"),
    ("What is the largest planet in the solar system?", "jupiter"),
    ("Which planet is known as the Red Planet?", "mars"),
    ("What is the chemical symbol for water?", "h2o"),
    ("How many days are there in a week?", "seven|7"),
    ("How many legs does a spider have?", "eight|8"),
    ("What gas do plants take in from the air?", "carbon dioxide|co2"),
    ("What is the freezing point of water in Celsius?", r"\b0\b|zero"),
    ("Who wrote Romeo and Juliet?", "shakespeare"),
    ("What is the opposite of hot?", "cold"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is 2 plus 2?", r"\b4\b|four"),
    ("Which animal is known as the king of the jungle?", "lion"),
    ("What is the boiling point of water in Celsius?", "100"),
]


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text)


FORMATS = [
    (
        "Answer with only yes or no: is the sun a star?",
        lambda t: t.strip().lower().strip(".!") in ("yes", "no"),
    ),
    ("Answer with only yes or no: is ice cold?", lambda t: t.strip().lower().strip(".!") in ("yes", "no")),
    ("Reply with one word: what colour is grass?", lambda t: len(_words(t)) == 1),
    ("Reply with one word: what do bees make?", lambda t: len(_words(t)) == 1),
    ("Write the word hello in capital letters only.", lambda t: "HELLO" in t and not re.search(r"[a-z]", t)),
    (
        "Write the word genlab in capital letters only.",
        lambda t: "GENLAB" in t and not re.search(r"[a-z]", t),
    ),
    (
        "List exactly three fruits, separated by commas, and nothing else.",
        lambda t: len([x for x in t.split(",") if x.strip()]) == 3,
    ),
    (
        "List exactly three colours, separated by commas, and nothing else.",
        lambda t: len([x for x in t.split(",") if x.strip()]) == 3,
    ),
    (
        "Give a numbered list of three animals.",
        lambda t: all(re.search(rf"(?m)^\s*{k}[.)]", t) for k in (1, 2, 3)),
    ),
    (
        "Give a numbered list of three cities.",
        lambda t: all(re.search(rf"(?m)^\s*{k}[.)]", t) for k in (1, 2, 3)),
    ),
    (
        "Answer with a number only: how many hours are in a day?",
        lambda t: re.fullmatch(r"\s*24\.?\s*", t) is not None,
    ),
    (
        "Answer with a number only: how many months are in a year?",
        lambda t: re.fullmatch(r"\s*12\.?\s*", t) is not None,
    ),
    ("Write one sentence that ends with an exclamation mark.", lambda t: t.strip().endswith("!")),
    ("Write a sentence of at most eight words about cats.", lambda t: 0 < len(_words(t)) <= 8),
]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
    },
    "required": ["name", "age"],
}
ORDER = {
    "type": "object",
    "properties": {
        "item": {"type": "string", "maxLength": 30},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "required": ["item", "quantity"],
}
EXTRACT = [
    ("Anna is 31 years old.", PERSON, {"name": "anna", "age": 31}),
    ("Bob, aged 45, lives in Leeds.", PERSON, {"name": "bob", "age": 45}),
    ("My grandmother Rosa turned 88 today.", PERSON, {"name": "rosa", "age": 88}),
    ("Karim is a 19-year-old student.", PERSON, {"name": "karim", "age": 19}),
    ("Meet Li, who is 7.", PERSON, {"name": "li", "age": 7}),
    ("Dr. Okafor is 52 years old.", PERSON, {"name": "okafor", "age": 52}),
    ("Please send 3 bicycles.", ORDER, {"item": "bicycle", "quantity": 3}),
    ("I would like 12 eggs.", ORDER, {"item": "egg", "quantity": 12}),
    ("Order: 5 helmets.", ORDER, {"item": "helmet", "quantity": 5}),
    ("We need 40 chairs for the event.", ORDER, {"item": "chair", "quantity": 40}),
    ("Can I get 2 coffees?", ORDER, {"item": "coffee", "quantity": 2}),
    ("Ship 100 pencils to the school.", ORDER, {"item": "pencil", "quantity": 100}),
]


def _fn(name: str, description: str, properties: dict, required: list[str]) -> dict:
    params = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


TOOLS = [
    _fn(
        "get_weather",
        "Get the current weather in a city",
        {"city": {"type": "string", "maxLength": 40}},
        ["city"],
    ),
    _fn(
        "add",
        "Add two integers",
        {
            "a": {"type": "integer", "minimum": -99999, "maximum": 99999},
            "b": {"type": "integer", "minimum": -99999, "maximum": 99999},
        },
        ["a", "b"],
    ),
    _fn(
        "convert_currency",
        "Convert an amount between currencies",
        {
            "amount": {"type": "number"},
            "from": {"enum": ["USD", "EUR", "GBP", "JPY"]},
            "to": {"enum": ["USD", "EUR", "GBP", "JPY"]},
        },
        ["amount", "from", "to"],
    ),
    _fn(
        "send_email",
        "Send an email",
        {"to": {"type": "string", "maxLength": 60}, "subject": {"type": "string", "maxLength": 60}},
        ["to", "subject"],
    ),
]
SELECT = [
    ("What's the weather like in Berlin?", "get_weather"),
    ("Is it raining in London right now?", "get_weather"),
    ("Tell me the temperature in Madrid.", "get_weather"),
    ("What is 17 plus 25?", "add"),
    ("Add 3 and 9.", "add"),
    ("Sum 120 and 45 for me.", "add"),
    ("Convert 50 dollars to euros.", "convert_currency"),
    ("How many yen is 20 pounds?", "convert_currency"),
    ("Change 100 EUR into USD.", "convert_currency"),
    ("Email bob@example.com with the subject Lunch.", "send_email"),
    ("Send an email to ana@example.org titled Report.", "send_email"),
    ("Write to sam@example.com, subject: Invoice.", "send_email"),
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


class _Transcript:
    """The same model, chatting through the plain transcript instead of its template."""

    def __init__(self, generator):
        from genlab.core.chat import TRANSCRIPT

        self.generator, self.chat_format, self.supports_constraints = generator, TRANSCRIPT, True


def ask(generator, chat_format_of, messages, *, max_tokens=48, schema=None, tools=None, choice=None):
    from genlab.core import SamplingParams
    from genlab.core.chat import answer, plan

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, json_schema=schema, repeat_penalty=1.0)
    turn = plan(chat_format_of, messages, params, model="bench", seed=0, tools=tools, tool_choice=choice)
    a = generator.generate(turn.request)[0]
    content, calls, _ = answer(turn, a.text.strip(), a.finish_reason)
    return content or "", calls, a.completion_tokens


def run(name: str, generator, fmt_source, limit: int | None) -> dict:
    scores: dict[str, list[float]] = {"factual": [], "format": [], "json": [], "tools": []}
    valid_calls, total_calls, tokens = 0, 0, 0
    started = time.perf_counter()
    for question, expected in FACTS[:limit]:
        text, _, n = ask(generator, fmt_source, [{"role": "user", "content": question}], max_tokens=32)
        scores["factual"].append(float(re.search(expected, text.lower()) is not None))
        tokens += n
    for instruction, rule in FORMATS[:limit]:
        text, _, n = ask(generator, fmt_source, [{"role": "user", "content": instruction}], max_tokens=48)
        scores["format"].append(float(bool(text.strip()) and rule(text)))
        tokens += n
    for sentence, schema, expected in EXTRACT[:limit]:
        messages = [{"role": "user", "content": f"Extract the details as JSON: {sentence}"}]
        text, _, n = ask(generator, fmt_source, messages, schema=schema, max_tokens=40)
        try:
            got = json.loads(text)
            ok = all(
                str(got[k]).lower().rstrip("s") == str(v).lower().rstrip("s") for k, v in expected.items()
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        scores["json"].append(float(ok))
        tokens += n
    for request, expected in SELECT[:limit]:
        _, calls, n = ask(
            generator,
            fmt_source,
            [{"role": "user", "content": request}],
            tools=TOOLS,
            choice="required",
            max_tokens=80,
        )
        for call in calls:
            total_calls += 1
            with contextlib.suppress(json.JSONDecodeError, jsonschema.ValidationError):
                jsonschema.validate(
                    json.loads(call["function"]["arguments"]), SCHEMAS[call["function"]["name"]]
                )
                valid_calls += 1
        scores["tools"].append(float(bool(calls) and calls[0]["function"]["name"] == expected))
        tokens += n
    seconds = time.perf_counter() - started
    return {
        "configuration": name,
        "accuracy": {k: round(sum(v) / len(v), 3) for k, v in scores.items() if v},
        "items": sum(len(v) for v in scores.values()),
        "tool_call_validity": round(valid_calls / total_calls, 3) if total_calls else None,
        "tool_calls": total_calls,
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each category")
    args = parser.parse_args()
    from genlab.core.settings import Settings
    from genlab.registry import Registry

    registry = Registry(Settings.from_env())
    instruct, base = registry.load("smollm2-135m-instruct"), registry.load("gemma-3-270m")
    results = [
        run("SmolLM2-135M-Instruct, its own chat template", instruct, instruct, args.limit),
        run("SmolLM2-135M-Instruct, plain transcript", instruct, _Transcript(instruct), args.limit),
        run("Gemma 3 270M base, plain transcript", base, base, args.limit),
    ]
    table = Table(title=f"chat benchmark: {results[0]['items']} items, greedy")
    for col in ("configuration", "factual", "format", "json", "tools", "call validity", "tokens/s"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for r in results:
        a = r["accuracy"]
        validity = f"{r['tool_call_validity']:.0%}" if r["tool_call_validity"] is not None else ""
        table.add_row(
            r["configuration"],
            *(f"{a[k]:.0%}" for k in ("factual", "format", "json", "tools")),
            validity,
            f"{r['tokens_per_second']}",
        )
    Console().print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                "results": results,
            },
            indent=2,
        )
    )
    return 0 if all(r["tool_call_validity"] in (None, 1.0) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
