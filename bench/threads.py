"""One thread or every core, per shipped GGUF: prompt evaluation and greedy decode, in one process,
interleaved (1, 2, 1, 2 threads ...) so machine noise hits both alike.

Each measurement opens the model with ``n`` threads, evaluates a 384-token prompt in one call
(prompt tokens/s), then decodes 48 tokens greedily (decode tokens/s). What genlab chooses from it:
a GGUF under ``ONE_DECODE_THREAD_BYTES`` decodes on one thread and evaluates prompts on every core.
Prints a table and writes bench/results/threads.json.

    python bench/threads.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "threads.json"
TEXT = (Path(__file__).parents[1] / "README.md").read_text("utf-8")[:3000]


def measure(path: Path, threads: int) -> tuple[float, float]:
    from genlab.backends.llamacpp import _open_llama

    llm = _open_llama(path, n_ctx=2048, n_threads=threads, n_threads_batch=threads)
    tokens = llm.tokenize(TEXT.encode())[:384]
    started = time.perf_counter()
    llm.eval(tokens)
    prompt = len(tokens) / (time.perf_counter() - started)
    started, n = time.perf_counter(), 0
    for _ in llm.generate(tokens[:8], temp=0.0):
        n += 1
        if n == 48:
            break
    decode = n / (time.perf_counter() - started)
    llm.close()
    return prompt, decode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    from genlab.backends.llamacpp import embedded_gguf_path, instruct_gguf_path
    from genlab.core.settings import Settings, physical_cores

    settings = Settings.from_env()
    cores = physical_cores()
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for run in range(args.runs):
        for path in (instruct_gguf_path(settings), embedded_gguf_path(settings)):
            for threads in (1, cores) if run % 2 == 0 else (cores, 1):
                samples.setdefault((path.name, threads), []).append(measure(path, threads))
    rows = [
        {
            "model": name,
            "threads": threads,
            "prompt_tok_s": round(statistics.median(p for p, _ in runs), 1),
            "decode_tok_s": round(statistics.median(d for _, d in runs), 1),
            "runs": [[round(p, 1), round(d, 1)] for p, d in runs],
        }
        for (name, threads), runs in sorted(samples.items())
    ]
    table = Table(title=f"threads per model, medians of {args.runs} runs, {cores} physical cores")
    for col in ("model", "threads", "prompt tok/s", "decode tok/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["model"], str(r["threads"]), f"{r['prompt_tok_s']}", f"{r['decode_tok_s']}")
    Console().print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    RESULTS.write_text(json.dumps({"machine": machine, "runs": args.runs, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
