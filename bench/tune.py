"""Review that teaches, measured: does a LoRA tuned on reviewers' decisions make a recipe better?

Per recipe (marketing-copy and code-completion by default), on the shipped SmolLM2-135M-Instruct:

1. The recipe's evaluation set is split: the first half is run ``--seeds`` times through a pipeline
   that holds every result for review, in a fresh home; a simulated reviewer decides each held item
   with the recipe's own checks: approve when they pass; otherwise edit it into an output of the
   same case that passed, the case's reference answer first where it has one (code-completion's
   reviewer half does), else another seed's: what a reviewer who fixes the text would release;
   reject when there is none.
2. `genlab tune`'s steps on those decisions: the data (SFT rows, DPO pairs), then a LoRA (SFT, then
   DPO) on the base, registered as BASE+ADAPTER; tuning time on this machine and adapter size.
3. The second half is scored with the base and with the adapter, on the same seeds: the paired
   differences (case x seed) get an exact sign-flip permutation test (two-sided).
4. The chat bench (bench/chat.py's graded instruction set) with the base and with each adapter,
   paired per item (exact McNemar on the discordant items), and decode speed with and without the
   adapter (tokens/s, interleaved runs; goal >= 0.9x).

Prints a table and writes bench/results/tune.json.

    nice -n 10 python bench/tune.py [--recipes marketing-copy,code-completion] [--seeds 4] [--steps 24]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import tempfile
import time
from math import comb
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tune.json"
BASE = "smollm2-135m-instruct"
CASE_INPUT = {"code-completion": {"attempts": 1}}  # pass@1: one try per run


def sign_flip_p(differences: list[float], draws: int = 20000) -> float:
    """Two-sided p of the mean paired difference under random sign flips (exact up to 2^16)."""
    d = [x for x in differences if x != 0]
    if not d:
        return 1.0
    observed = abs(sum(d))
    if len(d) <= 16:
        flips = itertools.product((1, -1), repeat=len(d))
        hits = [abs(sum(s * x for s, x in zip(f, d, strict=True))) >= observed - 1e-12 for f in flips]
        return sum(hits) / len(hits)
    rng = random.Random(0)
    hits = sum(abs(sum(x * rng.choice((1, -1)) for x in d)) >= observed - 1e-12 for _ in range(draws))
    return (hits + 1) / (draws + 1)


def mcnemar_p(before: list[float], after: list[float]) -> float:
    """Exact two-sided McNemar: of the items that changed, how unlikely this split is at 1/2."""
    up = sum(1 for b, a in zip(before, after, strict=True) if a > b)
    down = sum(1 for b, a in zip(before, after, strict=True) if a < b)
    n = up + down
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(up, down) + 1)) / 2**n
    return min(1.0, 2 * tail)


def simulate_reviewer(recipe, cases, registry, store, seeds: int) -> dict:
    """Run each case ``seeds`` times, held for review; decide each item by the recipe's checks."""
    from genlab.apps import run_recipe
    from genlab.pipeline import Pipeline
    from genlab.safety.policy import Policy
    from genlab.safety.review import ReviewQueue

    hold = Policy.parse("name: hold\nreview:\n  mode: always\n", source="hold.yaml")
    pipe, queue = Pipeline(registry, policy=hold, store=store), ReviewQueue(store)
    verdicts = {"approve": 0, "edit": 0, "reject": 0}
    for case in cases:
        runs = []
        for seed in range(seeds):
            value = {**recipe.case_input(case), **CASE_INPUT.get(recipe.name, {})}
            runs.append(run_recipe(recipe, value, model=BASE, pipeline=pipe, seed=1000 + seed))
        good = [r.text for r in runs if r.ok and r.text.strip()]
        if case.get("reference"):  # the eval case's own reference answer comes first
            good.insert(0, case["reference"])
        for r in runs:
            if r.review is None:
                continue
            if r.ok:
                verdict, edited, reason = "approve", None, "ok"
            elif good:
                verdict, edited, reason = "edit", {"text": good[0]}, "factual_error"
            else:
                verdict, edited, reason = "reject", None, "low_quality"
            queue.decide(r.review["id"], "sim:reviewer", verdict, reason, edited=edited, identity="local")
            verdicts[verdict] += 1
    return verdicts


def score(recipe, cases, generator, seeds: int) -> list[float]:
    from genlab.apps import run_recipe

    out = []
    for case in cases:
        for seed in range(seeds):
            value = {**recipe.case_input(case), **CASE_INPUT.get(recipe.name, {})}
            result = run_recipe(recipe, value, generator=generator, seed=seed)
            out.append(recipe.score(case, result)[recipe.metric])
    return out


def decode_speed(registry, names: list[str], runs: int = 3, tokens: int = 64) -> dict[str, float]:
    from genlab.core import GenerationRequest, SamplingParams

    request = GenerationRequest(
        prompt="Write a short story about a lighthouse keeper.",
        params=SamplingParams(max_tokens=tokens, temperature=0.0, stop=()),
    )
    seconds = {n: 0.0 for n in names}
    made = {n: 0 for n in names}
    for _ in range(runs):  # interleaved: the machine's load hits both alike
        for n in names:
            g = registry.load(n)
            started = time.perf_counter()
            a = g.generate(request)[0]
            seconds[n] += time.perf_counter() - started
            made[n] += a.completion_tokens
    return {n: round(made[n] / seconds[n], 1) for n in names}


def tune_recipe(recipe, registry, store, args) -> tuple[dict, str]:
    from genlab.safety.review import ReviewQueue
    from genlab.tuning import data as tune_data
    from genlab.tuning import lora as tune_lora

    built = tune_data.build(ReviewQueue(store).export(), recipe.name)
    built.require(args.min_decisions)
    cfg = tune_lora.TuneConfig(steps=args.steps, dpo_steps=args.dpo_steps, lr=args.lr)
    started = time.perf_counter()
    with tune_lora.quiet():
        base = tune_lora.load_base(registry, BASE)
        result = tune_lora.train(
            base, {"sft": built.sft, "dpo": built.dpo}, cfg, registry.settings.home / "runs" / recipe.name
        )
        entry = tune_lora.register(registry, base, recipe.name, cfg, result, built.manifest())
    info = {
        "counts": built.counts(),
        "tune_seconds": round(time.perf_counter() - started, 1),
        "train_seconds": result.seconds,
        "sft_loss": result.sft_loss,
        "dpo_loss": result.dpo_loss,
        "adapter_mb": round((entry.path / "adapter.gguf").stat().st_size / 1e6, 2),
        "config": cfg.__dict__,
    }
    return info, entry.name


def main() -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    import chat as chat_bench
    from genlab.apps import get_recipe
    from genlab.core.settings import Settings
    from genlab.registry import Registry
    from genlab.storage import Store

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default="marketing-copy,code-completion")
    parser.add_argument("--seeds", type=int, default=4, help="runs per case (reviewer half and scored half)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--dpo-steps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--min-decisions", type=int, default=4)
    parser.add_argument("--chat-limit", type=int, default=None, help="items per chat-bench category")
    args = parser.parse_args()
    console = Console(width=160)
    home = Path(tempfile.mkdtemp(prefix="genlab-tune-bench-"))
    os.environ["GENLAB_HOME"] = str(home)  # a fresh home: its review queue holds only this run's items
    registry = Registry(Settings(home=home))
    store = Store(settings=registry.settings)
    results, adapters = [], []
    for name in args.recipes.split(","):
        recipe = get_recipe(name)
        cases = recipe.eval_cases()
        half = len(cases) // 2
        tuning, held_out = cases[:half], cases[half:]
        started = time.perf_counter()
        verdicts = simulate_reviewer(recipe, tuning, registry, store, args.seeds)
        review_s = round(time.perf_counter() - started, 1)
        try:
            info, adapter = tune_recipe(recipe, registry, store, args)
        except Exception as e:  # too few usable decisions: reported, the other recipes go on
            results.append({"recipe": name, "verdicts": verdicts, "error": str(e)})
            console.print(f"{name}: {e}")
            continue
        before = score(recipe, held_out, registry.load(BASE), args.seeds)
        after = score(recipe, held_out, registry.load(adapter), args.seeds)
        diffs = [a - b for a, b in zip(after, before, strict=True)]
        results.append(
            {
                "recipe": name,
                "metric": recipe.metric,
                "cases": {"reviewed": len(tuning), "held_out": len(held_out), "seeds": args.seeds},
                "verdicts": verdicts,
                "review_seconds": review_s,
                **info,
                "before": round(sum(before) / len(before), 3),
                "after": round(sum(after) / len(after), 3),
                "paired_n": len(diffs),
                "p_value": round(sign_flip_p(diffs), 4),
            }
        )
        adapters.append(adapter)
        console.print(results[-1])
    base_chat = chat_bench.run("base", registry.load(BASE), registry.load(BASE), args.chat_limit)
    chats = {"base": {k: v for k, v in base_chat.items() if k != "correct"}}
    for adapter in adapters:
        g = registry.load(adapter)
        r = chat_bench.run(adapter, g, g, args.chat_limit)
        chats[adapter] = {
            **{k: v for k, v in r.items() if k != "correct"},
            "mean": round(sum(r["correct"]) / len(r["correct"]), 3),
            "p_value_vs_base": round(mcnemar_p(base_chat["correct"], r["correct"]), 4),
        }
    chats["base"]["mean"] = round(sum(base_chat["correct"]) / len(base_chat["correct"]), 3)
    speed = decode_speed(registry, [BASE, *adapters])
    table = Table(title=f"review that teaches: {BASE}, LoRA on simulated reviewers' decisions")
    for col in ("recipe", "decisions (a/e/r)", "SFT/DPO", "tune s", "adapter MB", "before", "after", "p"):
        table.add_column(col, justify="left" if col == "recipe" else "right")
    for r in results:
        if "error" in r:
            table.add_row(r["recipe"], "/".join(str(v) for v in r["verdicts"].values()), r["error"][:60])
            continue
        v, c = r["verdicts"], r["counts"]
        table.add_row(
            f"{r['recipe']} ({r['metric']}, n={r['paired_n']})",
            f"{v['approve']}/{v['edit']}/{v['reject']}",
            f"{c['sft']}/{c['dpo']}",
            f"{r['tune_seconds']}",
            f"{r['adapter_mb']}",
            f"{r['before']:.3f}",
            f"{r['after']:.3f}",
            f"{r['p_value']:.3f}",
        )
    console.print(table)
    for name, c in chats.items():
        console.print(f"chat bench, {name}: {c['mean']:.3f} {c['accuracy']} p={c.get('p_value_vs_base', '')}")
    ratios = {n: round(speed[n] / speed[BASE], 3) for n in adapters}
    console.print(f"decode tokens/s: {speed}; with adapter / without: {ratios}")
    RESULTS.parent.mkdir(exist_ok=True)
    machine = {"platform": platform.platform(), "python": sys.version.split()[0]}
    out = {
        "machine": machine,
        "base": BASE,
        "recipes": results,
        "chat": chats,
        "decode": speed,
        "decode_ratio": ratios,
    }
    RESULTS.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
