"""A decoder-only transformer language model, in the manner of nanoGPT's model.py.

The layout is Llama's (so that llama.cpp can run an exported model unchanged):
pre-norm blocks with RMSNorm, causal self-attention through ``scaled_dot_product_attention``,
rotary position embeddings (RoPE, interleaved pairs as in the original RoFormer and llama.cpp's
"norm" rope) or learned absolute positions, a SwiGLU MLP, no biases, and the output projection
tied to the token embedding. A KV cache makes incremental decoding O(T) per token instead of
O(T^2).

Shapes: B batch, T time (tokens), C channels (n_embd), nh heads, hs head size (C // nh), V vocab.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core import InvalidRequestError
from genlab.families.spec import FamilySpec


@dataclass
class TransformerConfig:
    vocab_size: int
    block_size: int = 256  # longest context the model attends over
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0  # 0 for small data on a CPU budget, as nanoGPT's CPU recipe
    positions: str = "rope"  # "rope" (rotary) or "learned" (absolute, GPT-2 style)
    rope_base: float = 10000.0  # theta in RoPE: frequencies theta^(-2i/hs)
    norm_eps: float = 1e-5
    ffn_hidden: int = 0  # 0 = SwiGLU's usual 8/3 * n_embd, rounded up to a multiple of 32

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise InvalidRequestError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.positions not in ("rope", "learned"):
            raise InvalidRequestError(f"positions must be 'rope' or 'learned', got {self.positions!r}")
        if (self.n_embd // self.n_head) % 2:
            raise InvalidRequestError("the head size (n_embd / n_head) must be even for rotary embeddings")
        if not self.ffn_hidden:
            self.ffn_hidden = 32 * math.ceil(8 * self.n_embd / 3 / 32)

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * g   (Zhang & Sennrich, 2019)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(head_size: int, length: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of m * theta_i for positions m < length, theta_i = base^(-2i/hs) (RoFormer eq. 15)."""
    theta = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), theta)  # (T, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_2i, x_2i+1) by its angle: [x0 cos - x1 sin, x0 sin + x1 cos]."""
    pairs = x.view(*x.shape[:-1], -1, 2)  # (B, nh, T, hs/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]  # (B, nh, T, hs/2) each
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # (B, nh, T, hs/2, 2)
    return out.flatten(-2)


class KVCache:
    """Keys and values of the last ``block_size`` tokens, one (k, v) ring buffer per layer.

    With rotary positions a key carries its absolute position in its rotation, and attention
    depends only on differences of positions, so the buffer can roll: a new token overwrites the
    oldest slot, and decoding past the block size costs O(block_size) per token instead of a
    recomputation of the whole window. (Learned absolute positions cannot roll; ``GPT`` refills
    the cache for them.)
    """

    def __init__(
        self, config: TransformerConfig, batch: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        hs = config.n_embd // config.n_head
        self.capacity = config.block_size
        shape = (batch, config.n_head, self.capacity, hs)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # tokens seen so far: the next token's absolute position

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = k.size(2)
        if T == 1:  # the decoding hot path: one slot, plain indexing
            slot = self.length % self.capacity
            self.k[layer][:, :, slot] = k[:, :, 0]
            self.v[layer][:, :, slot] = v[:, :, 0]
        else:
            slots = (self.length + torch.arange(T)) % self.capacity
            self.k[layer][:, :, slots] = k
            self.v[layer][:, :, slots] = v
        filled = min(self.length + T, self.capacity)
        return self.k[layer][:, :, :filled], self.v[layer][:, :, :filled]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.k = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.v = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.size()
        # (B, T, C) -> (B, nh, T, hs)
        q = self.q(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = self.k(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.v(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if rope is not None:
            cos, sin = rope  # (T, hs/2) for the positions of these T tokens
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, past + T, hs)
        # A single new token attends to everything before it: no mask. A prompt from position 0
        # attends causally. (Prefill after a non-empty cache never happens in this module.)
        causal = T > 1
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """SwiGLU (Shazeer, 2020): down(silu(gate(x)) * up(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(config.n_embd, config.ffn_hidden, bias=False)
        self.up = nn.Linear(config.n_embd, config.ffn_hidden, bias=False)
        self.down = nn.Linear(config.ffn_hidden, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, rope, cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), rope, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = (
            nn.Embedding(config.block_size, config.n_embd) if config.positions == "learned" else None
        )
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        hs = config.n_embd // config.n_head
        cos, sin = rope_angles(hs, config.block_size, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections into the residual stream: std 0.02 / sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        _, T = idx.size()  # (B, T)
        start = cache.length if cache is not None else 0
        rolling = cache is not None and self.pos_emb is None and T == 1  # one new token into the ring buffer
        if self.config.block_size < T or (start + T > self.config.block_size and not rolling):
            raise InvalidRequestError(
                f"sequence of {start + T} tokens exceeds block_size {self.config.block_size}"
            )
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))  # (T, C) broadcast
            rope = None
        elif start + T <= self.config.block_size:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        else:  # past the precomputed table: the angles of absolute position `start`
            hs = self.config.n_embd // self.config.n_head
            theta = self.config.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)
            angles = (start * theta)[None, :]  # (1, hs/2)
            rope = (angles.cos(), angles.sin())
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i)
        if cache is not None:
            cache.length += T
        x = self.norm(x)
        if targets is None:
            return F.linear(x[:, -1:, :], self.tok_emb.weight), None  # (B, 1, V): only the last step
        logits = F.linear(x, self.tok_emb.weight)  # (B, T, V), output tied to the input embedding
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    @torch.inference_mode()
    def sample_tokens(
        self,
        prompt: list[int],
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        logits_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        """Yield new token ids one by one; past block_size the model attends to the last block_size tokens.

        ``logits_filter`` sees each step's logits before sampling (constrained decoding masks them).
        """
        was_training = self.training
        self.eval()
        try:
            tokens = list(prompt)
            cache = None
            next_input = None
            for _ in range(max_new_tokens):
                if not use_cache:
                    window = torch.tensor([tokens[-self.config.block_size :]], dtype=torch.long)
                    logits, _ = self(window)
                elif cache is None or (self.pos_emb is not None and cache.length >= self.config.block_size):
                    # Fill the cache from the prompt's last block_size tokens. Learned positions
                    # cannot roll past their table, so they refill with block_size - 1 tokens each step.
                    keep = self.config.block_size - (1 if cache is not None else 0)
                    cache = KVCache(self.config, 1, self.tok_emb.weight.device, self.tok_emb.weight.dtype)
                    logits, _ = self(torch.tensor([tokens[-keep:]], dtype=torch.long), cache=cache)
                else:
                    logits, _ = self(next_input, cache=cache)
                step = logits[0, -1] if logits_filter is None else logits_filter(logits[0, -1])
                token = _pick(step, temperature, top_k, top_p, generator)
                tokens.append(token)
                next_input = torch.tensor([[token]], dtype=torch.long)
                yield token
        finally:
            self.train(was_training)


def _pick(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator) -> int:
    """Greedy at temperature 0; else sample from softmax(logits / T) cut to top-k and top-p."""
    if temperature == 0:
        return int(torch.argmax(logits))
    logits = logits.float() / temperature
    if top_k and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = torch.cumsum(sorted_p, 0) - sorted_p >= top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


SPEC = FamilySpec(
    name="transformer",
    title="Transformer language model",
    kind="decoder-only transformer",
    explain="Predicts the next token from all the previous ones with causal self-attention, trained "
    "by maximum likelihood; samples one token at a time. An exact likelihood (bits per "
    "character), strong on sequences; sampling cost grows with the length.",
    module=GPT,
    config=TransformerConfig,
    modalities=("text", "code"),
    colour="#3b5bdb",
    source="src/genlab/families/transformer.py",
)
