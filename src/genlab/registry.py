"""The model registry: every model genlab can load, by name.

Two sources:
- built-ins shipped with the package (the embedded Gemma 3 270M; the small models later issues
  train and ship);
- user models under ``GENLAB_HOME/models/<name>/``: ``config.json`` says which loader builds it
  (``kind``), ``card.json`` describes it; trained families add ``model.safetensors`` and codec files.

A loader turns an entry into a ``Generator``. Loaders are registered by kind in ``LOADERS``, so a
new family adds one function and nothing here changes. Weights are read with safetensors or
llama.cpp; nothing is ever unpickled.

Room ``registry``: may import ``core``, ``generators`` and ``backends``.
"""

from __future__ import annotations

import difflib
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.core import (
    Generator,
    InvalidRequestError,
    ModelCard,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
)
from genlab.core.io import atomic_write_json
from genlab.core.settings import Settings

# Names become directory names: a conservative alphabet, no path separators, no leading dot.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
#: ``BASE+ADAPTER``: a LoRA adapter served on its base (`genlab tune lora`); only genlab joins names so
ADAPTER_JOIN = "+"


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name or ADAPTER_JOIN in name:
        raise InvalidRequestError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')",
            param="model",
        )
    return name


def default_pull_name(filename: str) -> str:
    """``SmolLM2-360M-Instruct-Q4_K_M.gguf`` -> ``smollm2-360m-instruct-q4_k_m``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename).stem).strip("-._").lower()[:64]
    return validate_name(stem or "pulled")


def trainable_name(name: str) -> str:
    """The name a model trained in genlab will have. A shipped model's name is refused: the shipped
    model would otherwise answer to it, silently, in `generate`, `eval` and the server."""
    validate_name(name)
    if name in builtin_entries():
        raise ModelExistsError(
            f"{name!r} is the name of a shipped model; a model you train needs a name of its own",
            hint=f"train it as --name my-{name}" if len(name) <= 61 else "pick another --name",
        )
    return name


def default_trained_name(name: str) -> str:
    """A default name for a trained model: ``name``, or ``my-name`` where a shipped model has it."""
    return f"my-{name}" if name in builtin_entries() else name


@dataclass
class ModelEntry:
    """A registered model: its card, its config and (for user models) its directory."""

    name: str
    card: ModelCard
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.config.get("kind", "")


Loader = Callable[[ModelEntry, Settings], Generator]


def _load_gguf(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.backends.llamacpp import load_gguf_entry

    return load_gguf_entry(entry, settings)


def _load_gguf_lora(entry: ModelEntry, settings: Settings) -> Generator:
    """An adapter (``BASE+ADAPTER``): its GGUF LoRA loaded by llama.cpp on the base's quantised GGUF,
    both checked: the adapter's sha256, and that the base is the file it was trained on."""
    from genlab.backends.llamacpp import gguf_entry_path, load_gguf_entry
    from genlab.core import IntegrityError
    from genlab.core.io import sha256_file

    assert entry.path is not None
    base = Registry(settings).get(entry.config["base"])
    adapter = entry.path / entry.config["adapter"]
    if not adapter.is_file() or sha256_file(adapter) != entry.config.get("adapter_sha256"):
        raise IntegrityError(f"the adapter of {entry.name!r} ({adapter}) is missing or has changed")
    base_sha = sha256_file(gguf_entry_path(base, settings))
    if base_sha != entry.config.get("base_sha256"):
        raise IntegrityError(
            f"{entry.name!r} is an adapter for another {base.name!r}: it was trained on the GGUF with "
            f"sha256 {entry.config.get('base_sha256')}, the one registered now has {base_sha}",
            hint="tune it again on this base (genlab tune lora)",
        )
    return load_gguf_entry(entry, settings, base=base, lora_path=adapter)


def _load_openai(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.backends.openai_compat import OpenAICompatGenerator

    return OpenAICompatGenerator.from_entry(entry)


def _load_transformer(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.lm import TransformerLM

    assert entry.path is not None
    return TransformerLM.from_dir(entry.path, entry.card, entry.config)


def _load_image(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.image import ImageModel

    assert entry.path is not None
    return ImageModel.from_dir(entry.path, entry.card, entry.config)


def _load_audio(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.audio import AudioModel

    assert entry.path is not None
    return AudioModel.from_dir(entry.path, entry.card, entry.config)


def _load_video(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.video import VideoModel

    assert entry.path is not None
    return VideoModel.from_dir(entry.path, entry.card, entry.config)


def _load_voice(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.speech import PiperVoice, voice_files

    model, config = voice_files(settings)
    return PiperVoice(entry.card, model, config, threads=settings.threads_in_use)


def _load_whisper(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.transcriber import WhisperTranscriber, whisper_dir

    return WhisperTranscriber(entry.card, whisper_dir(settings), threads=settings.threads_in_use)


def _load_diffusers(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.text_to_image import TextToImagePipeline

    return TextToImagePipeline(entry.card, Path(entry.config["path"]), threads=settings.threads_in_use)


def _load_embedding(entry: ModelEntry, settings: Settings) -> Generator:
    from genlab.generators.embedding import EmbeddingModel, embedding_dir

    return EmbeddingModel(entry.card, embedding_dir(settings), threads=settings.threads_in_use)


#: kind -> loader. A new family registers its loader here.
LOADERS: dict[str, Loader] = {
    "piper": _load_voice,
    "sentence-transformers": _load_embedding,
    "diffusers": _load_diffusers,
    "whisper": _load_whisper,
    "gguf": _load_gguf,
    "embedded-gguf": _load_gguf,
    "gguf-lora": _load_gguf_lora,
    "openai_compat": _load_openai,
    "transformer": _load_transformer,
    "image": _load_image,
    "audio": _load_audio,
    "video": _load_video,
}


#: OpenAI's model names that clients send by default -> the shipped model that answers them.
ALIASES = {
    "tts-1": "piper-joe",
    "tts-1-hd": "piper-joe",
    "whisper-1": "whisper-tiny-en",
    "text-embedding-3-small": "all-minilm-l6-v2",
    "text-embedding-ada-002": "all-minilm-l6-v2",
}

#: Models trained in genlab and shipped inside the package (see scripts/ship_model.py).
SHIPPED_DIR = Path(__file__).parent / "shipped"


def builtin_entries() -> dict[str, ModelEntry]:
    import json

    from genlab.backends.llamacpp import EMBEDDED_CARD, INSTRUCT_CARD
    from genlab.generators.embedding import EMBED_CARD
    from genlab.generators.speech import VOICE_CARD
    from genlab.generators.transcriber import WHISPER_CARD

    entries = {}
    for shipped, kind in (
        (EMBEDDED_CARD, "embedded-gguf"),
        (INSTRUCT_CARD, "embedded-gguf"),
        (VOICE_CARD, "piper"),
        (WHISPER_CARD, "whisper"),
        (EMBED_CARD, "sentence-transformers"),
    ):
        card = ModelCard(**shipped.to_dict())
        entries[card.name] = ModelEntry(name=card.name, card=card, config={"kind": kind})
    if SHIPPED_DIR.is_dir():
        for directory in sorted(p for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file()):
            config = json.loads((directory / "config.json").read_text("utf-8"))
            shipped = ModelCard.load(directory / config.get("card", "card.json"))
            shipped.builtin = True
            entries[directory.name] = ModelEntry(
                name=directory.name, card=shipped, config=config, path=directory
            )
    return entries


ENGINES_OF_THEIR_OWN = {
    "embedded-gguf",
    "gguf",
    "gguf-lora",
    "openai_compat",
    "piper",
    "whisper",
}  # kinds that do not run on torch


class Registry:
    """Lists, resolves, adds and loads models. Loaded generators are cached: a model loads once."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._loaded: dict[str, Generator] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    # -- listing and resolving -------------------------------------------------------------------
    def _user_dirs(self) -> list[Path]:
        root = self.settings.models_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())

    def names(self) -> list[str]:
        return sorted({*builtin_entries(), *(p.name for p in self._user_dirs())})

    def list(self) -> list[ModelEntry]:
        return [self.get(n) for n in self.names()]

    def get(self, name: str) -> ModelEntry:
        builtins = builtin_entries()
        name = ALIASES.get(name, name)
        if name in builtins:
            return builtins[name]
        if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
            # Not a name genlab could have registered ("Qwen/Qwen2.5-7B" is a remote server's
            # name): unknown here, as OpenAI answers, never a path to look under.
            close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.4)
            raise ModelNotFoundError(str(name)[:100], close)
        directory = self.settings.models_dir / name
        if not (directory / "config.json").is_file():
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.4)
            raise ModelNotFoundError(name, close)
        return self._read_entry(directory)

    def _read_entry(self, directory: Path) -> ModelEntry:
        import json

        try:
            config = json.loads((directory / "config.json").read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"cannot read {directory / 'config.json'}: {e}") from None
        card_path = directory / config.get(
            "card", "card.json"
        )  # trained models point at their snapshot's card
        if card_path.is_file():
            card = ModelCard.load(card_path)
        else:
            card = ModelCard(
                name=directory.name, family="unknown", modality="text", backend=config.get("kind", "?")
            )
        return ModelEntry(name=directory.name, card=card, config=config, path=directory)

    def record_metrics(self, name: str, section: str, values: dict[str, Any]) -> bool:
        """Write ``values`` into a model's card under ``metrics[section]`` (``eval``, ``compare``,
        ``bias_audit``), atomically; the one way a measurement reaches a card. False for a model
        whose card is not a file (the embedded model's is code)."""
        from genlab.core.io import atomic_write_json

        entry = self.get(name)
        if entry.path is None:
            return False
        card = entry.card
        card.metrics = {**card.metrics, section: values}
        atomic_write_json(entry.path / entry.config.get("card", "card.json"), card.to_dict())
        return True

    # -- loading ---------------------------------------------------------------------------------
    def guard_features(self, texts: list[str]) -> Any:
        """What the learned guardrail reads of ``texts`` (n, 2048): the shipped embedding model's
        first layers as int8 ONNX (``generators.embedding.GuardEncoder``, without loading the float
        model), then the embedded Gemma's token embeddings (``backends.gemma_tokens``)."""
        import numpy as np

        from genlab.backends.gemma_tokens import gemma_tokens
        from genlab.generators.embedding import guard_encoder

        english = guard_encoder(self.settings).features(texts)
        return np.hstack([english, gemma_tokens(self.settings).bag(texts)])

    def load(self, name: str) -> Generator:
        """Resolve and load a model; later calls return the same instance."""
        entry = self.get(name)
        name = entry.name  # an alias ("tts-1") shares its model's instance
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            per_model = self._loading.setdefault(name, threading.Lock())
        with per_model:  # two threads asking for one model: the second waits, then reuses it
            if name in self._loaded:
                return self._loaded[name]
            loader = LOADERS.get(entry.kind)
            if loader is None:
                raise ModelLoadError(
                    f"model {name!r} has kind {entry.kind!r}, which no loader handles; "
                    f"known kinds: {', '.join(sorted(LOADERS))}"
                )
            if entry.kind not in ENGINES_OF_THEIR_OWN:  # torch models: the same threads as llama.cpp
                import torch

                torch.set_num_threads(self.settings.threads_in_use)
            generator = loader(entry, self.settings)
            with self._lock:
                self._loaded[name] = generator
            return generator

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    # -- adding and removing ---------------------------------------------------------------------
    def _new_dir(self, name: str) -> Path:
        validate_name(name)
        if name in self.names():
            raise ModelExistsError(
                f"a model named {name!r} is already registered",
                hint=f"pick another name or `genlab models remove {name}` first",
            )
        return self.settings.models_dir / name

    def _write_entry(self, directory: Path, config: dict[str, Any], card: ModelCard) -> ModelEntry:
        """Write config and card into a staging directory, then rename it into place atomically."""
        staging = directory.with_name(f".{directory.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            atomic_write_json(staging / "config.json", config)
            card.save(staging / "card.json")
            staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._read_entry(directory)

    def add_gguf(
        self,
        name: str,
        gguf: str | Path,
        *,
        sha256: str | None = None,
        n_ctx: int | None = None,
        chat_template: str | None = None,
    ) -> ModelEntry:
        """Register a GGUF file the user has (by reference: the file stays where it is); a chat
        template given here is used instead of the file's own."""
        from genlab.backends.llamacpp import describe_gguf

        directory = self._new_dir(name)
        config, card = describe_gguf(
            name, Path(gguf), expected_sha256=sha256, n_ctx=n_ctx, chat_template=chat_template
        )
        return self._write_entry(directory, config, card)

    def pull(
        self,
        repo: str,
        file: str | None = None,
        *,
        name: str | None = None,
        quant: str | None = None,
        revision: str = "main",
        chat_template: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> ModelEntry:
        """Download a GGUF from the Hugging Face Hub (only when asked) and register it; the card
        records where it came from and its sha256 (checked against the Hub's)."""
        from genlab.backends.hub import is_pipeline, pull_gguf, pull_pipeline

        if name is not None:
            self._new_dir(name)  # a bad or taken name fails before a download
        if file is None and is_pipeline(repo, revision):  # a diffusers pipeline: the whole folder
            folder, commit = pull_pipeline(
                repo, self.settings.home / "hub", revision=revision, progress=progress
            )
            name = name or default_pull_name(repo.split("/")[-1])
            source = f"hf://{repo}" + (f"@{commit}" if commit else "")
            return self.add_diffusers(name, folder, source=source, reproduce=f"genlab models pull {repo}")
        pulled = pull_gguf(
            repo, self.settings.home / "hub", file=file, quant=quant, revision=revision, progress=progress
        )
        name = name or default_pull_name(pulled.file)
        entry = self.add_gguf(name, pulled.path, sha256=pulled.sha256, chat_template=chat_template)
        card = entry.card
        card.source = pulled.source
        card.reproduce = f"genlab models pull {repo} {pulled.file}" + (
            f" --revision {revision}" if revision != "main" else ""
        )
        card.description = f"{pulled.file} from the Hugging Face Hub repository {repo}"
        assert entry.path is not None
        card.save(entry.path / "card.json")
        return self._read_entry(entry.path)

    def add_diffusers(
        self, name: str, directory: str | Path, *, source: str | None = None, reproduce: str | None = None
    ) -> ModelEntry:
        """Register a diffusers text-to-image pipeline folder (by reference; loaded once to check)."""
        from genlab.generators.text_to_image import TextToImagePipeline, describe_pipeline

        path = Path(directory).expanduser().resolve()
        target = self._new_dir(name)
        config, card = describe_pipeline(
            name, path, source or str(path), reproduce or f"genlab models add {name} --diffusers {path}"
        )
        probe = TextToImagePipeline(card, path)  # a folder diffusers cannot load fails here, not later
        card.parameters = probe.weights_bytes // 4
        del probe
        return self._write_entry(target, config, card)

    def add_openai(
        self,
        name: str,
        url: str,
        remote_model: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
    ) -> ModelEntry:
        """Register a model served by an OpenAI-compatible server (vLLM, llama.cpp server, Ollama)."""
        from genlab.backends.openai_compat import describe_remote

        directory = self._new_dir(name)
        config, card = describe_remote(name, url, remote_model, api_key_env=api_key_env, timeout_s=timeout_s)
        return self._write_entry(directory, config, card)

    def gguf_path(self, name: str) -> Path:
        """The verified GGUF file of a model llama.cpp runs (shipped or added); else a clear error."""
        from genlab.backends.llamacpp import gguf_entry_path

        return gguf_entry_path(self.get(name), self.settings)

    def add_lora(
        self, base: str, adapter: str, files: Path, config: dict[str, Any], card: ModelCard
    ) -> ModelEntry:
        """Register ``files`` (a directory holding ``config["adapter"]``, the GGUF LoRA) as
        ``BASE+ADAPTER``, replacing an earlier tune of that name in one rename: a server sees the
        old adapter or the new one, never a half-written one."""
        from genlab.core.io import swap_directory

        validate_name(adapter)
        name = f"{self.get(base).name}{ADAPTER_JOIN}{adapter}"
        if not NAME_PATTERN.match(name):
            raise InvalidRequestError(f"{name!r} is too long for a model name (64 characters at most)")
        atomic_write_json(files / "config.json", {**config, "kind": "gguf-lora", "base": self.get(base).name})
        card.name = name
        card.save(files / "card.json")
        swap_directory(files, self.settings.models_dir / name)
        with self._lock:
            self._loaded.pop(name, None)
        return self.get(name)

    def remove(self, name: str) -> None:
        if name in builtin_entries():
            raise InvalidRequestError(f"{name!r} is built in and cannot be removed")
        entry = self.get(name)
        assert entry.path is not None
        trash = entry.path.with_name(f".{name}.removing")
        entry.path.rename(trash)  # atomic: the model disappears from listings at once
        shutil.rmtree(trash, ignore_errors=True)
        with self._lock:
            self._loaded.pop(name, None)


_DEFAULT_REGISTRIES: dict[Path, Registry] = {}
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process's registry for the current ``GENLAB_HOME`` (one per home, so models load once)."""
    settings = Settings.from_env()
    with _DEFAULT_LOCK:
        if settings.home not in _DEFAULT_REGISTRIES:
            _DEFAULT_REGISTRIES[settings.home] = Registry(settings)
        return _DEFAULT_REGISTRIES[settings.home]
