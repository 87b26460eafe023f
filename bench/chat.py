"""Chat quality and speed: the shipped instruct model in its own template, the same model through
the plain transcript, and Gemma base through the transcript, on an instruction set graded
automatically.

Multi-turn (``--part multi-turn``): time to the first token of turn 5 of a 5-turn chat about a
document (the story first, about 850 tokens, then four short questions) while another conversation
takes its turns in between (so the context holds the other conversation each time),
with the prompt cache (the registry's model) and without it (the same GGUF opened with a zero
budget: llama.cpp's own reuse of the last prompt only, as before the cache), interleaved turn by
turn in one run; the ratio is uncached / cached.

Tool round trips (``--part tools``): for each tool request, a named ``tool_choice`` (exactly one call
expected), then a required call, its result, and ``auto``: completed when the model answers in words.

The set (written for genlab, below): 16 short factual questions (graded by the expected word),
14 formatting instructions (graded by a rule: one word, upper case, a list of N, a number ...),
12 JSON extractions (with a JSON Schema as the response format; graded by the extracted values) and
12 tool selections (four functions, tool_choice "required"; graded by the function chosen; every
call's arguments must parse and validate: validity is reported and must be 100%). Greedy decoding,
one run (deterministic on one machine). Prints a table and writes bench/results/chat.json.

    python bench/chat.py [--limit N] [--part quality|multi-turn|tools|all]
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
        "correct": [x for v in scores.values() for x in v],  # per item, in order: for paired tests
        "items": sum(len(v) for v in scores.values()),
        "tool_call_validity": round(valid_calls / total_calls, 3) if total_calls else None,
        "tool_calls": total_calls,
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds": round(seconds, 1),
    }


RESULTS_OF = {  # what each function returns in the round trip
    "get_weather": lambda a: {"temperature_c": 18, "sky": "sunny"},
    "add": lambda a: {"sum": a.get("a", 0) + a.get("b", 0)},
    "convert_currency": lambda a: {"amount": 42.5, "currency": a.get("to", "EUR")},
    "send_email": lambda a: {"sent": True},
}


def tool_round_trips(generator, limit: int | None) -> dict:
    """Each tool request: a named call (one call expected), then a required call, its result, and
    ``auto``: the round trip completes when the model answers in words instead of calling again."""
    named_one, answered, mentions = 0, 0, 0
    items = SELECT[:limit]
    for request, expected in items:
        messages = [{"role": "user", "content": request}]
        choice = {"type": "function", "function": {"name": expected}}
        _, calls, _ = ask(generator, generator, messages, tools=TOOLS, choice=choice, max_tokens=80)
        named_one += len(calls) == 1
        _, calls, _ = ask(generator, generator, messages, tools=TOOLS, choice="required", max_tokens=80)
        results = [RESULTS_OF[c["function"]["name"]](json.loads(c["function"]["arguments"])) for c in calls]
        follow = [
            *messages,
            {"role": "assistant", "content": None, "tool_calls": calls},
            *(
                {"role": "tool", "tool_call_id": c["id"], "content": json.dumps(r)}
                for c, r in zip(calls, results, strict=True)
            ),
        ]
        text, again, _ = ask(generator, generator, follow, tools=TOOLS, choice="auto", max_tokens=48)
        answered += bool(text.strip()) and not again
        values = [str(v).lower() for r in results for v in r.values()]
        mentions += any(v in text.lower() for v in values)
    n = len(items)
    return {
        "items": n,
        "named_choice_exactly_one_call": round(named_one / n, 3),
        "round_trip_answered": round(answered / n, 3),
        "answer_mentions_the_result": round(mentions / n, 3),
    }


#: the two conversations of the multi-turn measure: each user turn is a paragraph to discuss
STORY = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps, "
    "trimming the wick and polishing the great lens until it shone. Ships passing the reef knew the "
    "light by its rhythm: two long flashes and a short one. One winter the supply boat failed to come, "
    "and the keeper rationed oil, lighting the lamp only when fog rolled in from the sea. "
)
GARDEN = (
    "The community garden began on an empty lot behind the library, where neighbours carried soil in "
    "wheelbarrows and built raised beds from old pallets. Tomatoes, beans and sunflowers grew in the "
    "first summer, and children painted the fence in bright stripes. A rota decided who watered on "
    "which day, and a notebook in the shed recorded every harvest and every visiting bird. "
)


FOLLOW_UPS = (
    "Who is the main character?",
    "Where does it take place?",
    "What problem do they face?",
    "How would you end the story?",
)


def _user_turn(text: str, turn: int) -> str:
    """A chat about a document: the document (about 850 tokens) first, then short questions."""
    if turn == 1:
        return f"Read this story and answer my questions about it.\n\n{text * 11}\nWhat is it about?"
    return FOLLOW_UPS[(turn - 2) % len(FOLLOW_UPS)]


def _first_token_seconds(generator, fmt_source, messages) -> tuple[float, str, int]:
    from genlab.core import SamplingParams
    from genlab.core.chat import plan

    params = SamplingParams(max_tokens=24, temperature=0.0, repeat_penalty=1.0)
    turn = plan(fmt_source, messages, params, model="bench", seed=0)
    started, first, text, prompt_tokens = time.perf_counter(), None, "", 0
    for chunk in generator.stream(turn.request):
        if first is None and chunk.text:
            first = time.perf_counter() - started
        text += chunk.text
        prompt_tokens = chunk.prompt_tokens or prompt_tokens
    took = first if first is not None else time.perf_counter() - started
    return took, text.strip(), prompt_tokens


def multi_turn(cached, uncached, turns: int = 5) -> dict:
    """Two conversations taking turns on each generator, interleaved: A1 B1 A2 B2 ... A5."""
    chats = {name: {"A": [], "B": []} for name in ("cached", "uncached")}
    seconds: dict[str, list[float]] = {"cached": [], "uncached": []}
    history_tokens = 0
    for turn in range(1, turns + 1):
        for who, text in (("A", STORY), ("B", GARDEN)):
            for name, generator in (("cached", cached), ("uncached", uncached)):
                messages = chats[name][who]
                messages.append({"role": "user", "content": _user_turn(text, turn)})
                took, reply, prompt_tokens = _first_token_seconds(generator, generator, messages)
                messages.append({"role": "assistant", "content": reply})
                if who == "A":
                    seconds[name].append(took)
                    history_tokens = prompt_tokens
    last = {name: seconds[name][-1] for name in seconds}
    return {
        "turns": turns,
        "history_tokens_at_last_turn": history_tokens,
        "first_token_seconds_per_turn": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "first_token_seconds_last_turn": {k: round(v, 3) for k, v in last.items()},
        "speedup_last_turn": round(last["uncached"] / last["cached"], 1),
        "same_replies": chats["cached"] == chats["uncached"],
        "prompt_cache": cached.prompt_cache.stats(),
    }


def _print_multi_turn(r: dict) -> None:
    table = Table(
        title=f"multi-turn: time to first token, {r['history_tokens_at_last_turn']} tokens of history"
    )
    table.add_column("turn", justify="right")
    for col in ("cached (s)", "uncached (s)", "uncached / cached"):
        table.add_column(col, justify="right")
    per_turn = r["first_token_seconds_per_turn"]
    for i, (c, u) in enumerate(zip(per_turn["cached"], per_turn["uncached"], strict=True), start=1):
        table.add_row(str(i), f"{c:.2f}", f"{u:.2f}", f"{u / c:.1f}x")
    Console().print(table)


def _write(updates: dict) -> None:
    """Merge this run's parts into bench/results/chat.json (a part run alone keeps the others)."""
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    machine = {"platform": platform.platform(), "python": sys.version.split()[0]}
    RESULTS.write_text(json.dumps({**previous, "machine": machine, **updates}, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each category")
    parser.add_argument("--part", choices=("quality", "multi-turn", "tools", "all"), default="all")
    args = parser.parse_args()
    from genlab.backends.llamacpp import LlamaCppGenerator
    from genlab.core.settings import Settings
    from genlab.registry import Registry

    registry = Registry(Settings.from_env())
    instruct = registry.load("smollm2-135m-instruct")
    if args.part in ("multi-turn", "all"):
        uncached = LlamaCppGenerator(
            instruct.card, instruct.model_path, **instruct.threads, prompt_cache_bytes=0
        )
        result = multi_turn(instruct, uncached)
        uncached.close()
        _print_multi_turn(result)
        _write({"multi_turn": result})
    if args.part in ("tools", "all"):
        trips = tool_round_trips(instruct, args.limit)
        Console().print(f"tool round trips, {trips['items']} requests: {trips}")
        _write({"tool_round_trips": trips})
    if args.part in ("multi-turn", "tools"):
        return 0
    return quality(registry, instruct, args.limit)


def quality(registry, instruct, limit: int | None) -> int:
    base = registry.load("gemma-3-270m")
    results = [
        run("SmolLM2-135M-Instruct, its own chat template", instruct, instruct, limit),
        run("SmolLM2-135M-Instruct, plain transcript", instruct, _Transcript(instruct), limit),
        run("Gemma 3 270M base, plain transcript", base, base, limit),
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
    _write({"results": results})
    return 0 if all(r["tool_call_validity"] in (None, 1.0) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
