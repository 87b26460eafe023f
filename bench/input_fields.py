"""The input policy over every field a chat request shows the model: for requests with more and
more tools (each with a description and properties that have descriptions), and a history of tool
calls and results, how many fields the policy reads (each string on its own) and how long the
default policy (the learned guardrail on every field) takes, p50 of the repeats. Writes
bench/results/input_fields.json.

    python bench/input_fields.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from genlab.core import SamplingParams
from genlab.core.chat import plan
from genlab.core.io import atomic_write_json
from genlab.pipeline import Pipeline
from genlab.registry import default_registry

RESULTS = Path(__file__).parent / "results" / "input_fields.json"
MODEL = "smollm2-135m-instruct"  # a shipped instruct model that takes tools
SIZES = [(1, 2, 0), (4, 4, 2), (8, 10, 4), (16, 10, 8)]  # (tools, properties each, past tool calls)


def request(model, tools: int, properties: int, calls: int):
    """A chat turn with ``tools`` tools of ``properties`` described properties each, after
    ``calls`` earlier calls and their results."""
    defined = [
        {
            "type": "function",
            "function": {
                "name": f"lookup_{t}",
                "description": f"Looks up record {t} in the catalogue and returns its fields.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        f"field_{k}": {
                            "type": "string",
                            "description": f"The value of field {k}, as written.",
                        }
                        for k in range(properties)
                    },
                },
            },
        }
        for t in range(tools)
    ]
    messages = [{"role": "user", "content": "Find the record for Paris and tell me its fields."}]
    for c in range(calls):
        arguments = json.dumps({"field_0": f"Paris, entry {c}"})
        call = {
            "id": f"call_{c}",
            "type": "function",
            "function": {"name": "lookup_0", "arguments": arguments},
        }
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{c}", "content": f'{{"entry": {c}, "status": "found"}}'},
        ]
    return plan(model, messages, SamplingParams(max_tokens=8), model=MODEL, tools=defined).request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    registry = default_registry()
    model = registry.load(MODEL)
    pipeline = Pipeline(registry, policy="default")
    pipeline.gate().input_text("warm the learned guardrail")
    rows = []
    for tools, properties, calls in SIZES:
        turn = request(model, tools, properties, calls)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            pipeline.gate().input_request(turn)
            seconds.append(time.perf_counter() - started)
        p50 = statistics.median(seconds)
        fields = len({(f.text, f.instructions) for f in turn.fields})  # each distinct text is read once
        rows.append(
            {
                "tools": tools,
                "properties": properties,
                "calls": calls,
                "fields": fields,
                "p50_s": round(p50, 3),
                "ms_per_field": round(p50 * 1000 / fields, 2),
            }
        )
    table = Table(
        title=f"The default input policy over every field of a chat request (p50 of {args.repeats})"
    )
    for column in ("tools x properties", "past calls", "fields read", "p50 s", "ms per field"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['tools']} x {r['properties']}",
            str(r["calls"]),
            str(r["fields"]),
            f"{r['p50_s']:.3f}",
            f"{r['ms_per_field']:.2f}",
        )
    Console().print(table)
    atomic_write_json(
        RESULTS,
        {
            "benchmark": "input_fields",
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.platform(),
            "policy": "default",
            "rows": rows,
        },
    )
    Console().print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
