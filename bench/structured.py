"""Structured output at the speed of free text: constrained decoding against free decoding.

For each model (the embedded Gemma 3 270M, and any other registered text model named with
--model), the same prompt is decoded:
  free          no constraint (the reference),
  json_object   any JSON object,
  schema3       a three-field JSON Schema,
  nested        a nested schema with arrays, enums and bounded integers,
  tool_call     a function-call object ({"name": ..., "arguments": {...}}),
  llama_grammar the three-field schema through llama.cpp's own grammar sampler (what genlab used
                before the constraint engine; llama-cpp-python directly), for the record.
Runs interleave the cases (free, json_object, ..., free, ...) so machine noise hits all alike; each
run's prompt starts with its run number (no KV-cache reuse). Sampling is at temperature 0.8 with
several seeds, so the constrained outputs are not one lucky path. Every constrained output must
parse and validate against its schema (validity is reported; anything under 100% fails the run).
Mask time per token: llguidance's mask computation, replayed over each output's tokens.
Prints a table and writes bench/results/structured.json.

    python bench/structured.py [--runs 4] [--max-tokens 96] [--model NAME ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jsonschema
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "structured.json"
PROMPT = "Run {i}. Here is a record of a customer order, written as JSON:"
SETTINGS = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}
SCHEMA3 = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "city": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "city", "age"],
}
NESTED = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{4}$"},
        "status": {"enum": ["pending", "shipped", "delivered", "returned"]},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "maxLength": 12},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                    "colour": {"enum": ["red", "green", "blue", "black"]},
                },
                "required": ["sku", "quantity", "colour"],
            },
        },
    },
    "required": ["order_id", "status", "items"],
}
TOOL_CALL = {
    "type": "object",
    "properties": {
        "name": {"const": "lookup_order"},
        "arguments": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "maxLength": 12},
                "include_history": {"type": "boolean"},
            },
            "required": ["order_id", "include_history"],
        },
    },
    "required": ["name", "arguments"],
}
CASES = {
    "free": None,
    "json_object": {"type": "object"},
    "schema3": SCHEMA3,
    "nested": NESTED,
    "tool_call": TOOL_CALL,
}


def run_genlab(generator, case: str, i: int, max_tokens: int) -> dict:
    schema = CASES[case]
    start = time.perf_counter()
    a = generator.generate(PROMPT.format(i=i), max_tokens=max_tokens, seed=i, json_schema=schema, **SETTINGS)[
        0
    ]
    seconds = time.perf_counter() - start
    valid = None
    if schema is not None:
        try:
            jsonschema.validate(json.loads(a.text), schema)
            valid = a.finish_reason == "stop"
        except (json.JSONDecodeError, jsonschema.ValidationError):
            valid = a.finish_reason == "length"  # cut by max_tokens: reported as such, not invalid
    return {
        "tokens": a.completion_tokens,
        "seconds": seconds,
        "tok_s": a.completion_tokens / seconds,
        "valid": valid,
        "finish": a.finish_reason,
        "text": a.text,
    }


def run_llama_grammar(generator, i: int, max_tokens: int) -> dict:
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = LlamaGrammar.from_string(json_schema_to_gbnf(json.dumps(SCHEMA3)), verbose=False)
    start = time.perf_counter()
    with generator._lock:
        r = generator._llm.create_completion(
            PROMPT.format(i=i),
            max_tokens=max_tokens,
            seed=i,
            grammar=grammar,
            temperature=0.8,
            top_p=0.95,
            top_k=40,
            min_p=0.05,
            repeat_penalty=1.1,
        )
    seconds = time.perf_counter() - start
    n = r["usage"]["completion_tokens"]
    return {"tokens": n, "seconds": seconds, "tok_s": n / seconds, "valid": None, "finish": None}


def mask_time(generator, text: str, schema: dict) -> tuple[float, int]:
    """Seconds per mask over the output's own tokens (llguidance, the engine genlab uses)."""
    from genlab.core.constraints import Constrained, compile_constraint
    from genlab.core.request import SamplingParams

    constrained = Constrained(generator._lltokenizer, compile_constraint(SamplingParams(json_schema=schema)))
    tokens = generator.tokenize(text, add_bos=False)
    total = 0.0
    steps = 0
    for token in tokens:
        start = time.perf_counter()
        constrained.allowed()
        total += time.perf_counter() - start
        steps += 1
        try:
            constrained.advance(token)
        except Exception:  # a re-tokenisation that differs from the sampled tokens: stop replaying
            break
    return total, steps


def bench_model(name: str, runs: int, max_tokens: int) -> dict:
    from genlab.core.settings import Settings
    from genlab.registry import Registry

    generator = Registry(Settings.from_env()).load(name)
    generator.generate("warm up", max_tokens=4, json_schema={"type": "object"})  # builds the tokenizer
    llama = hasattr(generator, "_llm")
    order = [*CASES, *(["llama_grammar"] if llama else [])]
    samples: dict[str, list[dict]] = {case: [] for case in order}
    for i in range(runs):
        for case in order if i % 2 == 0 else reversed(order):
            if case == "llama_grammar":
                samples[case].append(run_llama_grammar(generator, i, max_tokens))
            else:
                samples[case].append(run_genlab(generator, case, i, max_tokens))
    free = statistics.median(s["tok_s"] for s in samples["free"])
    rows = {}
    for case, runs_ in samples.items():
        tok_s = statistics.median(s["tok_s"] for s in runs_)
        row = {"tok_s": tok_s, "ratio_to_free": tok_s / free, "runs": len(runs_)}
        row["tokens"] = statistics.median(s["tokens"] for s in runs_)
        checked = [s for s in runs_ if s["valid"] is not None]
        if checked:
            row["valid"] = sum(s["valid"] for s in checked) / len(checked)
            row["cut_by_max_tokens"] = sum(s["finish"] == "length" for s in checked)
        if CASES.get(case) and llama:
            seconds = steps = 0
            for s in runs_:
                t, n = mask_time(generator, s["text"], CASES[case])
                seconds, steps = seconds + t, steps + n
            row["mask_us_per_token"] = 1e6 * seconds / max(steps, 1)
        rows[case] = row
    return {"model": name, "cases": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--model", action="append", help="a registered text model (repeatable)")
    args = parser.parse_args()
    models = args.model or ["gemma-3-270m"]
    results = [bench_model(m, args.runs, args.max_tokens) for m in models]
    console = Console()
    for result in results:
        table = Table(title=f"{result['model']}: constrained vs free decoding ({args.runs} runs each)")
        for col in ("case", "tok/s", "x free", "tokens", "valid", "cut by max", "mask µs/token"):
            table.add_column(col, justify="right" if col != "case" else "left")
        for case, row in result["cases"].items():
            table.add_row(
                case,
                f"{row['tok_s']:.1f}",
                f"{row['ratio_to_free']:.2f}",
                f"{row['tokens']:.0f}",
                f"{row['valid']:.0%}" if "valid" in row else "",
                str(row.get("cut_by_max_tokens", "")),
                f"{row['mask_us_per_token']:.0f}" if "mask_us_per_token" in row else "",
            )
        console.print(table)
    goal = all(
        row["ratio_to_free"] >= 0.9
        for r in results
        for case, row in r["cases"].items()
        if case not in ("free", "llama_grammar")
    )
    valid = all(row.get("valid", 1.0) == 1.0 for r in results for row in r["cases"].values())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                "settings": {"runs": args.runs, "max_tokens": args.max_tokens, **SETTINGS},
                "models": results,
                "goal_constrained_at_least_0_9x_free": goal,
                "all_outputs_valid": valid,
            },
            indent=2,
        )
    )
    console.print(f"goal (constrained >= 0.9x free): {'met' if goal else 'NOT met'}; all valid: {valid}")
    return 0 if valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
