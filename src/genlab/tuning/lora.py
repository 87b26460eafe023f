"""LoRA fine-tuning of a GGUF model on CPU, from reviewers' decisions, served back on the quantised base.

1. The base is read from its GGUF into float32 weights by transformers' GGUF loader
   (``from_pretrained(dir, gguf_file=...)``, which dequantises), with its tokenizer.
2. ``peft`` wraps the attention and MLP projections with LoRA (Hu et al., 2021):
   ``W x + (alpha / r) B A x``, ``A`` (r, in) random, ``B`` (out, r) zero, so step 0 is the base.
3. SFT: the cross-entropy of the completion's tokens given the prompt (the prompt's are masked).
   Then, where reviewers edited, DPO (Rafailov et al., 2023) on (prompt, chosen, rejected), the
   reference being the same network with its adapter switched off:
   ``L = -log sigmoid(beta ((log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x))))``.
4. The adapter is written as a llama.cpp GGUF LoRA, as llama.cpp's ``convert_lora_to_gguf.py``
   writes one: ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, and
   per projection ``<gguf tensor>.lora_a`` (r, in) and ``.lora_b`` (out, r), named by gguf-py's
   tensor map. llama's GGUF stores ``attn_q`` and ``attn_k`` with their rows permuted for its
   RoPE layout (transformers' loader undoes it), so ``B`` of those is permuted the same way.

Checkpoints (the adapter and optimiser state, safetensors) are committed every few steps under the
run directory; ``resume`` continues from the last. The adapter is registered only at the end, in
one rename: a failed or interrupted tune leaves every served model as it was.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError, ModelCard, UnsupportedError
from genlab.core.io import atomic_write_json, sha256_file
from genlab.registry import Registry

#: the projections LoRA adapts: attention (q, k, v, o) and the SwiGLU MLP (gate, up, down)
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: GGUF architectures whose adapters genlab writes -> the projections llama.cpp stores permuted
#: (convert_hf_to_gguf.py's ``LlamaModel.permute``) and the head count each is permuted by
ARCHITECTURES: dict[str, dict[str, str]] = {
    "llama": {"q_proj": "num_attention_heads", "k_proj": "num_key_value_heads"},
}


@dataclass
class TuneConfig:
    """Every knob of a tune; saved in the run directory and the adapter's card."""

    steps: int = 24  # SFT steps (one row each): tiny by default, so a tune runs in minutes on 2 cores
    dpo_steps: int = 0  # DPO steps after SFT, on the edits' (chosen, rejected) pairs
    rank: int = 8  # r: the adapter's rank (its size grows linearly with it)
    alpha: float = 16.0  # LoRA's alpha: the update is scaled by alpha / r
    lr: float = 5e-4  # AdamW's learning rate: LoRA tolerates far larger ones than full fine-tuning
    beta: float = 0.1  # DPO's beta: how far from the reference the preference may pull
    max_tokens: int = 384  # a longer row keeps its end (the completion) and loses the prompt's start
    save_every: int = 8  # steps between checkpoints
    seed: int = 0

    def check(self) -> TuneConfig:
        for name in ("steps", "dpo_steps", "rank", "max_tokens", "save_every"):
            low = 0 if name == "dpo_steps" else 1
            if getattr(self, name) < low:
                raise InvalidRequestError(f"{name.replace('_', '-')} must be at least {low}", param=name)
        if not (0 < self.lr < 1) or self.alpha <= 0 or self.beta <= 0:
            raise InvalidRequestError("lr must be in (0, 1); alpha and beta must be positive")
        return self


@dataclass
class Base:
    """A base model read for tuning: the float network, its tokenizer, where its GGUF is."""

    name: str
    gguf: Path
    architecture: str
    model: Any
    tokenizer: Any


def gguf_architecture(path: Path) -> str:
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields["general.architecture"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the libraries' notes that say nothing to a person tuning: transformers' deprecations
    inside itself, peft's "no config file" for a GGUF base (whose vocabulary a LoRA never changes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Could not find a config file")
        yield


def load_base(registry: Registry, name: str) -> Base:
    """The base's GGUF read into float weights; a clear error where genlab cannot tune it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = registry.gguf_path(name)
    architecture = gguf_architecture(path)
    if architecture not in ARCHITECTURES:
        raise UnsupportedError(
            f"{name!r} is a {architecture!r} model; genlab tunes and serves LoRA adapters of "
            f"{', '.join(ARCHITECTURES)} GGUF models"
        )
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return Base(registry.get(name).name, path, architecture, model, tokenizer)


# -- rows to tokens ------------------------------------------------------------------------------
def encode(tokenizer: Any, prompt: str, completion: str, max_tokens: int) -> tuple[list[int], int]:
    """The tokens of prompt + completion + end of sequence, and where the completion starts; a row
    longer than ``max_tokens`` loses the prompt's start (the completion is what is learnt)."""
    head = tokenizer(prompt).input_ids
    tail = [*tokenizer(completion, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    ids = (head + tail)[-max_tokens:]
    return ids, max(0, len(ids) - len(tail))


def sequence_logp(model: Any, ids: list[int], start: int) -> Any:
    """log p(completion | prompt) summed over the completion's tokens (and its token count)."""
    import torch

    x = torch.tensor([ids])  # (1, T)
    logits = model(input_ids=x).logits[0, :-1]  # (T-1, V): position t predicts token t+1
    logp = torch.log_softmax(logits.float(), dim=-1).gather(1, x[0, 1:, None])[:, 0]  # (T-1,)
    return logp[max(start - 1, 0) :].sum()


# -- checkpoints -----------------------------------------------------------------------------------
def _save(run_dir: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    from peft import get_peft_model_state_dict

    from genlab.training.checkpoint import commit_directory, optimizer_tensors, save_tensors

    def write(tmp: Path) -> None:
        save_tensors(tmp / "adapter.safetensors", get_peft_model_state_dict(model))
        tensors, meta = optimizer_tensors(optimizer)
        save_tensors(tmp / "optimizer.safetensors", tensors, meta)
        atomic_write_json(tmp / "state.json", {**state, "step": step})

    commit_directory(run_dir, "checkpoint", write)


def _resume(run_dir: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from genlab.training.checkpoint import load_optimizer

    directory = run_dir / "checkpoint"
    if not (directory / "state.json").is_file():
        raise InvalidRequestError(
            f"nothing to resume: {run_dir} has no checkpoint", hint="tune without --resume"
        )
    set_peft_model_state_dict(model, load_file(directory / "adapter.safetensors"))
    load_optimizer(optimizer, directory / "optimizer.safetensors")
    return json.loads((directory / "state.json").read_text("utf-8"))


# -- the loop ------------------------------------------------------------------------------------
Progress = Callable[[str, int, int, float], None]  # phase, step, of steps, loss


@dataclass
class TuneResult:
    steps: int
    sft_loss: float | None
    dpo_loss: float | None
    seconds: float
    estimate_s: float
    tokens: int


def train(
    base: Base,
    rows: dict[str, list[dict[str, Any]]],
    cfg: TuneConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    estimate: Callable[[float], None] | None = None,
) -> TuneResult:
    """SFT (then DPO) steps of LoRA on ``base.model``, which becomes the peft model (``base.model``)."""
    import torch
    from peft import LoraConfig, get_peft_model

    sft = [encode(base.tokenizer, r["prompt"], r["completion"], cfg.max_tokens) for r in rows["sft"]]
    pairs = [
        (
            encode(base.tokenizer, r["prompt"], r["chosen"], cfg.max_tokens),
            encode(base.tokenizer, r["prompt"], r["rejected"], cfg.max_tokens),
        )
        for r in rows.get("dpo", [])
    ]
    dpo_steps = cfg.dpo_steps if pairs else 0
    if not sft:
        raise InvalidRequestError("no SFT rows to tune on")
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(TARGETS), lora_dropout=0.0)
    model = base.model = get_peft_model(base.model, lora)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", asdict(cfg))
    state = _resume(run_dir, model, optimizer) if resume else {"step": 0, "losses": []}
    order = list(range(len(sft)))
    random.Random(cfg.seed).shuffle(order)
    total, started, seconds_per_token, tokens = cfg.steps + dpo_steps, time.perf_counter(), 0.0, 0
    sft_loss = dpo_loss = None
    model.train()
    for step in range(state["step"], total):
        t0 = time.perf_counter()
        if step < cfg.steps:  # SFT: the completion's cross-entropy
            ids, start = sft[order[step % len(sft)]]
            labels = torch.tensor([[-100] * start + ids[start:]])  # (1, T): prompt tokens masked
            loss = model(input_ids=torch.tensor([ids]), labels=labels).loss
            sft_loss, n = loss.item(), len(ids)
        else:  # DPO on a reviewer's edit: chosen = edited, rejected = the model's own
            (chosen, c0), (rejected, r0) = pairs[(step - cfg.steps) % len(pairs)]
            with torch.no_grad(), model.disable_adapter():
                ref = sequence_logp(model, chosen, c0) - sequence_logp(model, rejected, r0)
            policy = sequence_logp(model, chosen, c0) - sequence_logp(model, rejected, r0)
            loss = -torch.nn.functional.logsigmoid(cfg.beta * (policy - ref))
            dpo_loss, n = loss.item(), 2 * (len(chosen) + len(rejected))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += n
        state["losses"].append(round(loss.item(), 4))
        if step == state["step"] and estimate is not None:  # measured on the first step, said before the rest
            seconds_per_token = (time.perf_counter() - t0) / n
            planned = sum(len(sft[order[s % len(sft)]][0]) for s in range(step, cfg.steps))
            planned += sum(2 * (len(c) + len(r)) for (c, _), (r, _) in pairs) * math.ceil(
                dpo_steps / max(len(pairs), 1)
            )
            estimate(seconds_per_token * planned)
        if progress is not None:
            progress("sft" if step < cfg.steps else "dpo", step + 1, total, loss.item())
        if (step + 1) % cfg.save_every == 0 or step + 1 == total:
            _save(run_dir, step + 1, model, optimizer, state)
    model.eval()
    return TuneResult(
        steps=total,
        sft_loss=sft_loss,
        dpo_loss=dpo_loss,
        seconds=round(time.perf_counter() - started, 2),
        estimate_s=round(seconds_per_token * tokens, 2),
        tokens=tokens,
    )


# -- the adapter as a GGUF LoRA ------------------------------------------------------------------
def permute(weights: Any, n_head: int) -> Any:
    """llama.cpp's row order of a q or k projection (convert_hf_to_gguf.py, ``LlamaModel.permute``):
    each head's rotary pairs interleaved rather than split in halves."""
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def write_adapter_gguf(base: Base, cfg: TuneConfig, out: Path) -> Path:
    """The peft adapter of ``base.model`` as a GGUF LoRA llama.cpp loads on ``base.gguf``."""
    import gguf
    from peft import get_peft_model_state_dict

    config = base.model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[base.architecture.upper()], config.num_hidden_layers)
    permuted = ARCHITECTURES[base.architecture]
    writer = gguf.GGUFWriter(str(out), base.architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(cfg.alpha))
    state = get_peft_model_state_dict(base.model)
    for key in sorted(state):  # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
        module, kind = key.removeprefix("base_model.model.").rsplit(".", 2)[0], key.rsplit(".", 2)[1]
        target = names.get_name(module)
        if target is None:
            raise UnsupportedError(f"no GGUF tensor for {module}")
        w = state[key].detach().float().numpy()  # lora_A (r, in), lora_B (out, r)
        heads = permuted.get(module.rsplit(".", 1)[1])
        if kind == "lora_B" and heads is not None:
            w = permute(w, getattr(config, heads))
        writer.add_tensor(f"{target}.weight.{'lora_a' if kind == 'lora_A' else 'lora_b'}", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def register(
    registry: Registry,
    base: Base,
    adapter: str,
    cfg: TuneConfig,
    result: TuneResult,
    manifest: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
) -> Any:
    """Write the GGUF LoRA into a staging directory and register it as ``BASE+ADAPTER`` in one rename."""
    import shutil

    staging = registry.settings.models_dir / f".{base.name}+{adapter}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        path = write_adapter_gguf(base, cfg, staging / "adapter.gguf")
        parent = registry.get(base.name).card
        card = ModelCard(
            **{
                **parent.to_dict(),
                "name": f"{base.name}+{adapter}",
                "builtin": False,
                "description": (
                    f"A LoRA adapter (rank {cfg.rank}) on {base.name}, tuned on reviewers' decisions "
                    f"of the {manifest['recipe']} recipe, served by llama.cpp on the base's quantised GGUF."
                ),
                "source": f"genlab tune lora --recipe {manifest['recipe']} --base {base.name} --name {adapter}",
                "training_data": (
                    f"{manifest['counts']['decisions']} review decisions of {manifest['recipe']} "
                    f"({manifest['counts']['sft']} SFT rows, {manifest['counts']['dpo']} DPO pairs)"
                ),
                "metrics": {"tune": {**asdict(result)}, **({"eval": evaluation} if evaluation else {})},
            }
        )
        config = {
            "adapter": path.name,
            "adapter_sha256": sha256_file(path),
            "base_sha256": sha256_file(base.gguf),
            "tune": asdict(cfg),
            "recipe": manifest["recipe"],
            "review_items_sha256": manifest["items_sha256"],
        }
        return registry.add_lora(base.name, adapter, staging, config, card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
