"""Train nanoGPT's CPU recipe with genlab's Trainer, and sample with and without the KV cache.

The recipe (nanoGPT README, "I only have a macbook"): char codec, n_layer 4, n_head 4, n_embd 128,
block 64, batch 12, 2,000 iterations, learning rate 1e-3 decaying to 1e-4, dropout 0. genlab's
`small` preset is exactly that.

Reported, with a reference measured in the same run:
  training  tokens/s of genlab's Trainer vs a plain PyTorch loop (same model, batches, optimiser)
            over the same number of steps; wall time, peak RSS, final validation loss and bits
            per character of the full run;
  sampling  tokens/s for 500 new tokens with and without the KV cache, for the trained model
            (block 64) and for the same width with block 512, at 1 and 2 threads.
Prints a table and writes bench/results/train_text.json.

    python bench/train_text.py [--data FILE] [--steps 2000] [--reference-steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "train_text.json"


def plain_loop(task, steps: int, cfg) -> float:
    """A minimal nanoGPT-style loop over the same task: the reference for the Trainer's overhead."""
    from genlab.training.trainer import learning_rate, mix_seed

    model = task.model
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay
    )
    started = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, cfg)
        x, y = task.batch(
            "train", torch.Generator().manual_seed(mix_seed(cfg.seed, 0, step, 0)), cfg.batch_size
        )
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * cfg.batch_size * model.config.block_size / (time.perf_counter() - started)


def sampling_speed(model, tokens: int = 500) -> dict[str, float]:
    out = {}
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        n = sum(
            1
            for _ in model.sample_tokens([1, 2, 3], tokens, temperature=1.0, generator=g, use_cache=use_cache)
        )
        out["kv_cache" if use_cache else "no_cache"] = n / (time.perf_counter() - started)
    out["ratio"] = out["kv_cache"] / out["no_cache"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a text file (default: all 42 Shakespeare works joined into one file)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--reference-steps", type=int, default=200, help="steps timed for the Trainer-vs-plain-loop ratio"
    )
    args = parser.parse_args()
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-"))

    from genlab.core.settings import Settings
    from genlab.data.text import load_corpus, shakespeare_dir
    from genlab.families.transformer import GPT, TransformerConfig
    from genlab.training.text import PRESETS, TextTask, train_text_model
    from genlab.training.trainer import TrainConfig, Trainer

    settings = Settings.from_env()
    data = args.data
    if data is None:
        texts = shakespeare_dir(settings)
        data = str(settings.datasets_dir / "shakespeare" / "all.txt")
        Path(data).write_text("\n\n".join(p.read_text() for p in sorted(texts.glob("*_gut.txt"))))
    console = Console()
    recipe = PRESETS["small"]

    # 1. Trainer vs plain loop, same steps, fresh identical models.
    corpus = load_corpus(data, settings)
    from genlab.codecs.text import CharCodec

    codec = CharCodec.train([d.text for d in corpus.train + corpus.val])
    cfg = TrainConfig(**{**recipe.train, "steps": args.reference_steps, "eval_every": 10**9})

    def fresh_task() -> TextTask:
        torch.manual_seed(0)
        return TextTask(GPT(TransformerConfig(vocab_size=codec.vocab_size, **recipe.model)), codec, corpus)

    plain_runs, trainer_runs = [], []
    for round_ in range(3):  # alternate which goes first; report medians
        for which in ("plain", "trainer") if round_ % 2 == 0 else ("trainer", "plain"):
            if which == "plain":
                plain_runs.append(plain_loop(fresh_task(), args.reference_steps, cfg))
            else:
                with tempfile.TemporaryDirectory() as run_dir:
                    trainer_runs.append(
                        Trainer(fresh_task(), cfg, Path(run_dir), progress=False).fit().items_per_second
                    )
    plain_tok_s, trainer_tok_s = statistics.median(plain_runs), statistics.median(trainer_runs)

    # 2. The full recipe through the CLI's code path.
    result = train_text_model(
        "bench-recipe", data, codec="char", preset_name="small", steps=args.steps, settings=settings
    )
    lm = __import__("genlab").registry.Registry(settings).load("bench-recipe")

    # 3. Sampling with and without the KV cache.
    sampling = {}
    wide = GPT(TransformerConfig(vocab_size=codec.vocab_size, **{**recipe.model, "block_size": 512})).eval()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sampling[f"trained, block 64, {threads} thread(s)"] = sampling_speed(lm.model)
        sampling[f"same width, block 512, {threads} thread(s)"] = sampling_speed(wide)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t = Table(title="Training: nanoGPT CPU recipe (char, 4x4x128, block 64, batch 12)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    rows = [
        (f"plain PyTorch loop tokens/s (median of 3 x {args.reference_steps} steps)", f"{plain_tok_s:,.0f}"),
        (f"genlab Trainer tokens/s (median of 3 x {args.reference_steps} steps)", f"{trainer_tok_s:,.0f}"),
        ("Trainer / plain loop", f"{trainer_tok_s / plain_tok_s:.3f}x"),
        (
            "full run: steps, wall s, tokens/s",
            f"{result.step}, {result.seconds:.0f}, {result.items_per_second:,.0f}",
        ),
        ("final validation loss", f"{result.history[-1]['val_loss']:.4f}"),
        ("final bits per character", f"{result.history[-1]['bits_per_char']:.4f}"),
        ("best validation loss", f"{result.best_val_loss:.4f}"),
        ("peak RSS MB", f"{peak_mb:.0f}"),
    ]
    for r in rows:
        t.add_row(*r)
    console.print(t)
    s = Table(title="Sampling 500 new tokens")
    for col in ("model", "KV cache tok/s", "no cache tok/s", "ratio"):
        s.add_column(col, justify="right" if col != "model" else "left")
    for name, v in sampling.items():
        s.add_row(name, f"{v['kv_cache']:.0f}", f"{v['no_cache']:.0f}", f"{v['ratio']:.2f}x")
    console.print(s)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "train_text",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__},
        "data": {"file": data, "train_chars": sum(len(d.text) for d in corpus.train), "val_chars": sum(len(d.text) for d in corpus.val)},
        "recipe": {"model": recipe.model, "train": {**recipe.train, "steps": args.steps}},
        "training": {
            "plain_loop_tokens_per_s": plain_tok_s,
            "plain_loop_runs": plain_runs,
            "trainer_runs": trainer_runs,
            "trainer_tokens_per_s": trainer_tok_s,
            "trainer_vs_plain": trainer_tok_s / plain_tok_s,
            "full_run": {"steps": result.step, "seconds": result.seconds, "tokens_per_s": result.items_per_second,
                         "history": result.history, "best_val_loss": result.best_val_loss},
            "peak_rss_mb": peak_mb,
        },
        "sampling_500_tokens": sampling,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
