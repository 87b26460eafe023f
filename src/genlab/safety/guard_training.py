"""Train the learned guardrail end to end (``genlab guard train``, ``scripts/train_semantic_guard.py``).

The network is ``semantic.forward`` written in torch, so gradients reach every weight: the
projection of Gemma's frozen token embeddings, the convolution over neighbouring tokens, the
attention pooling, the character n-gram embedding and the classifier. The token table itself
stays Gemma's (262k x 640 is the backbone, not ours to ship). Rows of the ``train`` split (plus any
extra labelled rows) are fitted; the ``calibration`` split sets the temperature (Guo et al. 2017,
"On Calibration of Modern Neural Networks") and the blocking threshold; the ``heldout`` split is
scored once and recorded, never tuned on. Weights are written as safetensors, the rest as JSON.

Key to the symbols: E token embeddings (n, 640); H hidden width; C classes; T temperature.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core.io import atomic_write_bytes, atomic_write_json
from genlab.safety import semantic
from genlab.safety.evaluate import breakdown

CLASSES = semantic.CLASSES


@dataclass
class TrainConfig:
    hidden: int = 128  # H: the projection's and the convolution's width
    grams: int = 0  # width of the character n-gram embedding (0: none; measured: n-grams memorise seeds)
    conv: bool = False  # the width-3 convolution (measured: it memorises seeds, docs/guardrails.md)
    pooling: str = "mean"  # "mean", or "attention" (attention, mean and max)
    mlp: int = 0  # the classifier's hidden layer (0: none, the pooled state goes straight to the logits)
    activation: str = "none"  # after the projection, per token: "gelu" or "none"
    epochs: int = (
        8  # chosen with the settings below on seeds of the train split held apart (docs/guardrails.md)
    )
    batch: int = 64
    lr: float = 5e-3
    weight_decay: float = 1e-2
    dropout: float = 0.0
    token_dropout: float = 0.15  # share of tokens hidden per training row: no single word decides
    gram_dropout: float = 0.3  # share of training rows read without their n-grams: the tokens must carry it
    max_lookalike_blocked: float = 0.02  # on the calibration split, where the threshold is chosen
    seed: int = 0


def validate_rows(rows: list[dict], source: str) -> list[dict]:
    """Extra labelled rows: a non-empty ``text`` and a ``label`` among ``CLASSES``."""
    from genlab.core import InvalidRequestError

    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not r["text"].strip():
            raise InvalidRequestError(f"{source}: row {i} has no text")
        if r.get("label") not in CLASSES:
            raise InvalidRequestError(
                f"{source}: row {i} has label {r.get('label')!r}; use one of {', '.join(CLASSES)}"
            )
    return rows


def _net(config: TrainConfig):
    import torch
    from torch import nn

    class GuardNet(nn.Module):
        """``semantic.forward`` in torch (the same maths, batched with a padding mask)."""

        def __init__(self) -> None:
            super().__init__()
            h, pooled = config.hidden, 3 if config.pooling == "attention" else 1
            self.proj = nn.Linear(640, h)
            if config.conv:
                self.conv = nn.Linear(3 * h, h)  # a width-3 convolution as one matmul over shifted copies
            if pooled == 3:
                self.attn = nn.Linear(h, 1, bias=False)
            if config.grams:
                self.grams = nn.EmbeddingBag(semantic.GRAMS, config.grams, mode="sum")
            if config.mlp:
                self.hid = nn.Linear(pooled * h + config.grams, config.mlp)
            self.out = nn.Linear(config.mlp or pooled * h + config.grams, len(CLASSES))
            self.drop = nn.Dropout(config.dropout)

        def forward(self, e, mask, gram_idx, gram_off, gram_w):
            gelu = nn.functional.gelu
            m = mask.unsqueeze(-1)  # (B, n, 1)
            c = self.proj(e)
            c = (gelu(c, approximate="tanh") if config.activation == "gelu" else c) * m  # (B, n, H)
            if config.conv:
                left = nn.functional.pad(c, (0, 0, 1, 0))[:, :-1]  # h[t-1], zero before the first token
                right = nn.functional.pad(c, (0, 0, 0, 1))[:, 1:]  # h[t+1]
                c = (gelu(self.conv(torch.cat([left, c, right], -1)), approximate="tanh") + c) * m
            parts = [c.sum(1) / m.sum(1).clamp(min=1)]  # the mean
            if config.pooling == "attention":
                score = self.attn(c).squeeze(-1).masked_fill(mask == 0, -1e9)  # (B, n)
                a = torch.softmax(score, -1).unsqueeze(-1)
                parts = [(a * c).sum(1), parts[0], c.masked_fill(m == 0, -1e9).max(1).values]
            if config.grams:
                parts.append(self.grams(gram_idx, gram_off, per_sample_weights=gram_w))  # (B, G)
            z = self.drop(torch.cat(parts, -1))
            if config.mlp:
                z = self.drop(gelu(self.hid(z), approximate="tanh"))
            return self.out(z)  # (B, C) logits

    return GuardNet()


class Encoded:
    """Rows as the network reads them: token ids (into a subset of Gemma's table) and n-grams."""

    def __init__(self, texts: list[str], tokens: Any) -> None:
        ids = [tokens.ids(t) for t in texts]
        vocab = np.unique(np.concatenate(ids))
        self.table = tokens.rows(vocab)  # (V, 640): only the tokens these rows use
        where = {int(v): i for i, v in enumerate(vocab)}
        self.ids = [np.array([where[int(t)] for t in row]) for row in ids]
        dense = semantic.char_grams(texts)
        self.grams = [(np.nonzero(row)[0], row[np.nonzero(row)[0]]) for row in dense]

    def batch(self, index: np.ndarray):
        import torch

        n = max(len(self.ids[i]) for i in index)
        tok = np.zeros((len(index), n), np.int64)
        mask = np.zeros((len(index), n), np.float32)
        for k, i in enumerate(index):
            tok[k, : len(self.ids[i])] = self.ids[i]
            mask[k, : len(self.ids[i])] = 1
        gi = [self.grams[i][0] for i in index]
        offsets = np.cumsum([0] + [len(g) for g in gi[:-1]])
        e = torch.from_numpy(self.table[tok])  # (B, n, 640)
        return (
            e,
            torch.from_numpy(mask),
            torch.from_numpy(np.concatenate(gi)).long(),
            torch.from_numpy(offsets).long(),
            torch.from_numpy(np.concatenate([self.grams[i][1] for i in index]).astype(np.float32)),
        )


def logits_of(net, data: Encoded, size: int = 256) -> np.ndarray:
    import torch

    net.eval()
    with torch.no_grad():
        parts = [
            net(*data.batch(np.arange(s, min(s + size, len(data.ids)))))
            for s in range(0, len(data.ids), size)
        ]
    return torch.cat(parts).numpy()


def fit(data: Encoded, labels: np.ndarray, config: TrainConfig, log: Callable[[str], None]):
    """Cross-entropy with class weights (each class counts as if it had the same number of rows)."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = _net(config)
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float32)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(CLASSES), 0.0))
    weight = weight.clamp(max=5.0).float()  # a class of a few rows must not dominate
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(labels) / config.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=steps)
    y = torch.from_numpy(labels).long()
    for epoch in range(config.epochs):
        net.train()
        order, total, start = rng.permutation(len(labels)), 0.0, time.perf_counter()
        for s in range(0, len(order), config.batch):
            index = order[s : s + config.batch]
            e, mask, gi, go, gw = data.batch(index)
            mask = _dropped(mask, config.token_dropout, rng)
            keep = torch.from_numpy(rng.random(len(index)) >= config.gram_dropout).float()
            gw = gw * torch.repeat_interleave(keep, torch.diff(torch.cat([go, torch.tensor([len(gw)])])))
            loss = torch.nn.functional.cross_entropy(net(e, mask, gi, go, gw), y[index], weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss) * len(index)
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {total / len(labels):.4f} ({time.perf_counter() - start:.0f} s)"
        )
    return net


def _dropped(mask, share: float, rng: np.random.Generator):
    """The padding mask with ``share`` of each row's tokens hidden (never all of them)."""
    import torch

    if share <= 0:
        return mask
    hide = torch.from_numpy(rng.random(tuple(mask.shape)) < share) & (mask > 0)
    kept = mask.masked_fill(hide, 0)
    empty = kept.sum(1) == 0
    kept[empty] = mask[empty]
    return kept


def temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of softmax(logits / T) (a grid, then refined)."""

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(1))).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=nll)
    fine = np.linspace(best / 1.06, best * 1.06, 21)
    return float(min(fine, key=nll))


def unsafe(logits: np.ndarray, t: float) -> np.ndarray:
    """P(not benign) after temperature scaling."""
    return 1.0 - semantic.softmax(logits / t)[:, 0]


def ece(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of a binary score: sum over equal-width bins of
    |accuracy - confidence| weighted by the bin's share (Naeini et al. 2015)."""
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == truth
    edges = np.linspace(0.5, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence >= lo) & ((confidence < hi) if hi < 1 else (confidence <= hi))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(total), 4)


def choose_threshold(p: np.ndarray, truth: np.ndarray, lookalike: np.ndarray, most: float) -> float:
    """The lowest threshold on P(unsafe) that blocks at most ``most`` of the look-alikes, never
    below 0.5 (a calibrated score below one half says benign is likelier)."""
    benign = np.sort(p[lookalike & ~truth])
    if not len(benign):
        return 0.5
    allowed = math.floor(most * len(benign))
    cut = benign[len(benign) - allowed - 1] if allowed < len(benign) else 0.0
    return round(float(min(max(cut + 1e-4, 0.5), 0.95)), 4)


def train(
    rows: list[dict],
    tokens: Any,
    out: Path,
    *,
    extra: list[dict] | None = None,
    config: TrainConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit on the train split (and ``extra``), calibrate, score the held-out split, write the weights
    to ``out`` (a folder): ``semantic_guard.safetensors`` and ``semantic_guard.json``."""
    import torch
    from safetensors.numpy import save

    config = config or TrainConfig()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    extra = [{**r, "split": "train"} for r in extra or []]
    fitted = [r for r in rows if r["split"] == "train"] + extra
    calibration = [r for r in rows if r["split"] == "calibration"]
    held = [r for r in rows if r["split"] == "heldout"]
    index = {c: i for i, c in enumerate(CLASSES)}
    start = time.perf_counter()
    encoded = {name: Encoded([r["text"] for r in part], tokens) for name, part in
               (("train", fitted), ("calibration", calibration), ("heldout", held))}  # fmt: skip
    log(f"encoded {sum(len(e.ids) for e in encoded.values())} rows in {time.perf_counter() - start:.0f} s")
    y = {name: np.array([index[r["label"]] for r in part]) for name, part in
         (("train", fitted), ("calibration", calibration), ("heldout", held))}  # fmt: skip
    net = fit(encoded["train"], y["train"], config, log)
    cal_logits, held_logits = logits_of(net, encoded["calibration"]), logits_of(net, encoded["heldout"])
    t = temperature(cal_logits, y["calibration"])
    cal_p, held_p = unsafe(cal_logits, t), unsafe(held_logits, t)
    cal_truth, held_truth = y["calibration"] > 0, y["heldout"] > 0
    lookalike = np.array([r.get("kind") != "ordinary" for r in calibration])
    threshold = choose_threshold(cal_p, cal_truth, lookalike, config.max_lookalike_blocked)
    heldout = breakdown(held_p >= threshold, held)
    heldout["ece"] = ece(held_p, held_truth)
    heldout["ece_before_temperature"] = ece(unsafe(held_logits, 1.0), held_truth)
    weights = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    blob = save(weights)
    meta = {
        "model": "Gemma 3 270M token embeddings (frozen, from the embedded GGUF) -> fine-tuned projection, "
        "width-3 convolution, attention/mean/max pooling + hashed char 3-5-gram embedding -> MLP",
        "classes": CLASSES,
        "config": asdict(config),
        "temperature": round(t, 4),
        "threshold": threshold,
        "calibration": {"rows": len(calibration), "ece": ece(cal_p, cal_truth)},
        "trained_on": f"{len(fitted)} train rows ({len(extra)} extra) of semantic.jsonl",
        "train_seconds": round(time.perf_counter() - start),
        "heldout": heldout,
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "semantic_guard.safetensors", blob)
    atomic_write_json(out / "semantic_guard.json", meta)
    log(json.dumps({k: meta[k] for k in ("temperature", "threshold", "calibration")}))
    return meta
