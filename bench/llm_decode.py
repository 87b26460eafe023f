"""Decode speed of the embedded Gemma 3 270M: genlab vs llama-cpp-python vs transformers.

Measures, on the same GGUF, prompt and greedy settings:
  (a) genlab's Generator.stream (registry -> LlamaCppGenerator -> llama-cpp-python),
  (b) llama-cpp-python's Llama.create_completion called directly (the reference),
  (c) Hugging Face transformers loading the same GGUF (dequantised to float32), when installed
      (`pip install -e '.[bench]'`).
Runs interleave (a, b, b, a, a, b, ...) so machine noise hits both alike; each run's prompt starts with
its run number, so every run evaluates its prompt (no KV-cache prefix reuse across runs).
Prints a table with ratios against (b) and writes bench/results/llm_decode.json.

    python bench/llm_decode.py [--runs 5] [--max-tokens 128] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

PROMPT = (
    "Run {i}. The history of computing is a long story. It begins with the abacus and mechanical "
    "calculators, continues with Babbage's analytical engine and Turing's ideas, and leads to"
)
SETTINGS = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
RESULTS = Path(__file__).parent / "results" / "llm_decode.json"


def timed_stream(pieces) -> dict[str, float]:
    """Consume a stream of (text, n_tokens) pieces; return TTFT and decode tokens/s."""
    start = time.perf_counter()
    first = last = None
    tokens = 0
    for n in pieces:
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        tokens += n
    assert first is not None and last is not None and tokens > 1
    return {
        "ttft_s": first - start,
        "decode_tok_s": (tokens - 1) / max(last - first, 1e-9),
        "tokens": tokens,
        "total_s": last - start,
    }


def run_genlab(generator, i: int, max_tokens: int) -> dict[str, float]:
    def pieces():
        for chunk in generator.stream(PROMPT.format(i=i), max_tokens=max_tokens, **SETTINGS):
            if chunk.finish_reason is None:
                yield 1  # llama-cpp-python streams one token per piece (multi-byte runs aside)

    return timed_stream(pieces())


def run_raw(llm, i: int, max_tokens: int) -> dict[str, float]:
    def pieces():
        for piece in llm.create_completion(
            PROMPT.format(i=i), max_tokens=max_tokens, stream=True, seed=0, **SETTINGS
        ):
            if piece["choices"][0]["text"]:
                yield 1

    return timed_stream(pieces())


def run_transformers(gguf: Path, runs: int, max_tokens: int) -> dict:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.generation.streamers import BaseStreamer
    except ImportError as e:
        return {"status": "not installed", "error": str(e)}
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as e:  # an architecture transformers cannot read from GGUF, say
        return {"status": "failed to load", "error": f"{type(e).__name__}: {e}"[:500]}
    load_s = time.perf_counter() - started
    model.eval()

    class Clock(BaseStreamer):
        def __init__(self):
            self.times: list[float] = []
            self.calls = 0

        def put(self, value):
            self.calls += 1
            if self.calls > 1:  # the first put() is the prompt
                self.times.append(time.perf_counter())

        def end(self):
            pass

    results = []
    for i in range(runs):
        inputs = tokenizer(PROMPT.format(i=i), return_tensors="pt")
        clock = Clock()
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                streamer=clock,
                min_new_tokens=max_tokens,
            )
        t = clock.times
        results.append({
            "ttft_s": t[0] - start,
            "decode_tok_s": (len(t) - 1) / max(t[-1] - t[0], 1e-9),
            "tokens": len(t),
            "total_s": t[-1] - start,
        })  # fmt: skip
    return {"status": "ok", "load_s": load_s, "runs": results, "dtype": "float32 (dequantised from Q4_K_M)"}


def summarise(runs: list[dict]) -> dict[str, float]:
    return {
        "ttft_s": statistics.median(r["ttft_s"] for r in runs),
        "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs),
        "tokens": statistics.median(r["tokens"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per engine (medians are reported)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens to decode per run")
    parser.add_argument("--skip-transformers", action="store_true", help="do not try (c)")
    args = parser.parse_args()

    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-"))
    from llama_cpp import Llama

    import genlab
    from genlab.backends.llamacpp import DEFAULT_N_CTX

    console = Console()
    with console.status("loading genlab's gemma-3-270m ..."):
        started = time.perf_counter()
        generator = genlab.load("gemma-3-270m")
        genlab_load_s = time.perf_counter() - started
    gguf = generator.model_path
    started = time.perf_counter()
    raw = Llama(model_path=str(gguf), n_ctx=DEFAULT_N_CTX, n_threads=os.cpu_count(), verbose=False)
    raw_load_s = time.perf_counter() - started

    run_genlab(generator, -1, 8)  # warm-up both (page in the mmap'd weights)
    run_raw(raw, -1, 8)
    a_runs, b_runs = [], []
    for i in range(args.runs):  # alternate which engine goes first, so neither always runs warm
        if i % 2:
            b_runs.append(run_raw(raw, i, args.max_tokens))
            a_runs.append(run_genlab(generator, i, args.max_tokens))
        else:
            a_runs.append(run_genlab(generator, i, args.max_tokens))
            b_runs.append(run_raw(raw, i, args.max_tokens))
    raw.close()
    generator.close()

    engines = {
        "genlab (llama.cpp backend)": {"load_s": genlab_load_s, **summarise(a_runs), "runs": a_runs},
        "llama-cpp-python direct": {"load_s": raw_load_s, **summarise(b_runs), "runs": b_runs},
    }
    if not args.skip_transformers:
        with console.status("transformers: loading the GGUF (dequantising) ..."):
            tf = run_transformers(gguf, max(1, min(args.runs, 3)), args.max_tokens)
        if tf["status"] == "ok":
            engines["transformers (same GGUF)"] = {
                "load_s": tf["load_s"],
                **summarise(tf["runs"]),
                "runs": tf["runs"],
                "dtype": tf["dtype"],
            }
        else:
            engines["transformers (same GGUF)"] = tf

    reference = engines["llama-cpp-python direct"]
    table = Table(title=f"Gemma 3 270M Q4_K_M, greedy, {args.max_tokens} tokens, medians of {args.runs} runs")
    for col in ("engine", "load s", "TTFT ms", "decode tok/s", "x llama.cpp (decode)", "x llama.cpp (TTFT)"):
        table.add_column(col, justify="right" if col != "engine" else "left")
    for name, e in engines.items():
        if "decode_tok_s" not in e:
            table.add_row(name, "-", "-", "-", e["status"], "")
            continue
        e["decode_ratio"] = e["decode_tok_s"] / reference["decode_tok_s"]
        e["ttft_ratio"] = e["ttft_s"] / reference["ttft_s"]
        table.add_row(name, f"{e['load_s']:.2f}", f"{e['ttft_s'] * 1000:.0f}", f"{e['decode_tok_s']:.1f}",
                      f"{e['decode_ratio']:.3f}x", f"{e['ttft_ratio']:.2f}x")  # fmt: skip
    console.print(table)
    goal = engines["genlab (llama.cpp backend)"]["decode_ratio"] >= 0.95
    console.print(
        f"goal genlab >= 0.95x raw llama.cpp decode: {'[green]met[/]' if goal else '[red]missed[/]'}"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "llm_decode",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {"max_tokens": args.max_tokens, "runs": args.runs, **SETTINGS, "n_ctx": DEFAULT_N_CTX},
        "engines": engines,
        "goal_met": goal,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
