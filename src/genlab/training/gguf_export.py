"""Export a transformer trained in genlab to GGUF, so llama.cpp runs it like any other model.

genlab's transformer uses Llama's layout on purpose (RMSNorm, interleaved RoPE, SwiGLU, no
biases, tied embeddings), so the export is a renaming of tensors into llama.cpp's "llama"
architecture plus the byte-level BPE vocabulary as a "gpt2" tokenizer with GPT-2's pre-tokenizer.
Weights are written as float32: no quantisation, so llama.cpp computes what PyTorch computes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from genlab.core import InvalidRequestError, UnsupportedError
from genlab.registry import Registry


def _tensor_names(n_layer: int) -> dict[str, str]:
    """genlab parameter name -> llama.cpp tensor name."""
    names = {"tok_emb.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}
    for i in range(n_layer):
        b, g = f"blocks.{i}.", f"blk.{i}."
        names |= {
            b + "attn_norm.weight": g + "attn_norm.weight",
            b + "attn.q.weight": g + "attn_q.weight",
            b + "attn.k.weight": g + "attn_k.weight",
            b + "attn.v.weight": g + "attn_v.weight",
            b + "attn.proj.weight": g + "attn_output.weight",
            b + "mlp_norm.weight": g + "ffn_norm.weight",
            b + "mlp.gate.weight": g + "ffn_gate.weight",
            b + "mlp.up.weight": g + "ffn_up.weight",
            b + "mlp.down.weight": g + "ffn_down.weight",
        }
    return names


def export_gguf(
    registry: Registry, name: str, out: Path | None = None, *, chat_template: str | None = None
) -> Path:
    import gguf

    from genlab.codecs.text import BPECodec

    entry = registry.get(name)
    if entry.kind != "transformer":
        raise UnsupportedError(f"{name!r} is not a transformer trained in genlab; only those export to GGUF")
    lm = registry.load(name)
    if not isinstance(lm.codec, BPECodec):
        raise UnsupportedError(
            f"{name!r} uses the {lm.codec.kind} codec; GGUF export needs a byte-level BPE model",
            hint="train one with `--codec bpe`",
        )
    cfg = lm.model.config
    if cfg.positions != "rope":
        raise UnsupportedError(
            "llama.cpp's llama architecture needs rotary positions; this model learned absolute ones"
        )
    out = Path(out) if out else registry.settings.home / "exports" / f"{name}.gguf"
    if out.suffix != ".gguf":
        raise InvalidRequestError(f"the output file must end in .gguf, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")

    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_context_length(cfg.block_size)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_block_count(cfg.n_layer)
    writer.add_feed_forward_length(cfg.ffn_hidden)
    writer.add_head_count(cfg.n_head)
    writer.add_head_count_kv(cfg.n_head)
    writer.add_rope_dimension_count(cfg.n_embd // cfg.n_head)
    writer.add_rope_freq_base(cfg.rope_base)
    writer.add_layer_norm_rms_eps(cfg.norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokenizer = lm.codec.tokenizer
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if len(tokens) != cfg.vocab_size:
        raise UnsupportedError(f"the tokenizer has {len(tokens)} tokens but the model {cfg.vocab_size}")
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    types = [
        gguf.TokenType.CONTROL if i == lm.codec.eot_id else gguf.TokenType.NORMAL for i in range(len(tokens))
    ]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # GPT-2's regex split, as the tokenizers ByteLevel pre-tokenizer
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(lm.codec.eot_id)
    writer.add_eos_token_id(lm.codec.eot_id)
    writer.add_add_bos_token(False)  # genlab models see no BOS token before a prompt
    if chat_template is not None:  # llama.cpp and genlab then render chats with it
        writer.add_chat_template(chat_template)

    state = lm.model.state_dict()
    for ours, theirs in _tensor_names(cfg.n_layer).items():
        writer.add_tensor(theirs, state[ours].detach().float().numpy())  # (out, in) as PyTorch stores it
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
