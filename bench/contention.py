"""Decode speed under contention: genlab's threads yield, raw llama-cpp-python's spin.

Each measurement is a fresh process that loads the embedded Gemma 3 270M and decodes greedily:
  genlab  through genlab (registry -> LlamaCppGenerator), with its settings: threads = physical
          cores, OpenMP's passive wait policy set before llama.cpp starts;
  raw     llama-cpp-python directly with its defaults (threads = half the CPUs, OpenMP's
          default wait policy, which spins; OMP_WAIT_POLICY removed from the environment);
  raw-all the same with threads = all CPUs (what genlab used before, and what the issue measured).
Each runs quiet, then next to one competing busy process (a pure-Python spin loop, as a browser
tab or a build would be), interleaved (genlab, raw, raw, genlab, ...). Prints a table and writes
bench/results/contention.json. Goal: under contention genlab keeps >= 0.5x its quiet rate.

    python bench/contention.py [--runs 3] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "contention.json"
ENGINES = ("genlab", "raw", "raw-all")
PROMPT = "Run {i}. The history of computing begins with the abacus and continues with"


def worker(engine: str, tokens: int, run: int) -> dict:
    """Runs in the child process: load, warm up, decode ``tokens`` greedily, report tokens/s."""
    prompt = PROMPT.format(i=run)
    if engine == "genlab":
        from genlab.core.settings import Settings
        from genlab.registry import Registry

        settings = Settings.from_env()
        generator = Registry(settings).load("gemma-3-270m")
        generator.generate("warm up", max_tokens=4, temperature=0)
        start = time.perf_counter()
        a = generator.generate(prompt, max_tokens=tokens, temperature=0, repeat_penalty=1.0)[0]
        n, threads = a.completion_tokens, generator.threads["n_threads"]  # the decode threads
    else:
        from llama_cpp import Llama

        from genlab.backends.llamacpp import embedded_gguf_path  # only the file's path
        from genlab.core.settings import Settings

        threads = {"n_threads": os.cpu_count()} if engine == "raw-all" else {}
        path = embedded_gguf_path(Settings.from_env())
        llm = Llama(model_path=str(path), n_ctx=4096, verbose=False, **threads)
        llm.create_completion("warm up", max_tokens=4, temperature=0)
        start = time.perf_counter()
        r = llm.create_completion(prompt, max_tokens=tokens, temperature=0, repeat_penalty=1.0)
        n, threads = r["usage"]["completion_tokens"], llm.n_threads
    seconds = time.perf_counter() - start
    return {"tokens": n, "seconds": seconds, "tok_s": n / seconds, "threads": threads}


def measure(engine: str, tokens: int, run: int) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)  # raw runs with OpenMP's default; genlab sets its own
    env.pop("GENLAB_THREADS", None)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", engine, "--tokens", str(tokens), "--run", str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--worker", choices=ENGINES)
    parser.add_argument("--run", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.tokens, args.run)))
        return 0
    samples: dict[tuple[str, str], list[dict]] = {}
    for scenario in ("quiet", "one busy process"):
        competitor = busy() if scenario != "quiet" else None
        try:
            for i in range(args.runs):
                for engine in ENGINES if i % 2 == 0 else reversed(ENGINES):
                    samples.setdefault((scenario, engine), []).append(measure(engine, args.tokens, i))
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    rows = {}
    for (scenario, engine), runs in samples.items():
        rows.setdefault(engine, {})[scenario] = {
            "tok_s_median": statistics.median(r["tok_s"] for r in runs),
            "tok_s_all": [round(r["tok_s"], 2) for r in runs],
            "threads": runs[0]["threads"],
        }
    for by in rows.values():
        by["kept_under_contention"] = by["one busy process"]["tok_s_median"] / by["quiet"]["tok_s_median"]
    table = Table(title=f"Gemma 3 270M greedy decode, {args.tokens} tokens, medians of {args.runs} runs")
    for col in ("engine", "threads", "quiet tok/s", "next to 1 busy tok/s", "kept", "runs (busy)"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for engine, by in rows.items():
        table.add_row(
            engine,
            str(by["quiet"]["threads"]),
            f"{by['quiet']['tok_s_median']:.1f}",
            f"{by['one busy process']['tok_s_median']:.1f}",
            f"{by['kept_under_contention']:.2f}x",
            ", ".join(f"{x:.1f}" for x in by["one busy process"]["tok_s_all"]),
        )
    console = Console()
    console.print(table)
    goal = rows["genlab"]["kept_under_contention"] >= 0.5
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "settings": {"runs": args.runs, "tokens": args.tokens},
                "engines": rows,
                "goal_genlab_keeps_0_5x_under_contention": goal,
            },
            indent=2,
        )
    )
    console.print(
        f"goal (genlab keeps >= 0.5x its quiet rate next to a busy process): {'met' if goal else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
