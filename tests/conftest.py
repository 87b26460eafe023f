"""Shared fixtures. Tests run against the real embedded Gemma through real llama.cpp.

Every test session gets its own GENLAB_HOME, so nothing touches the user's ~/.genlab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.core.settings import Settings
from genlab.registry import Registry

EMBEDDED = "gemma-3-270m"


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("genlab-home")
    os.environ["GENLAB_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def registry(session_home: Path) -> Registry:
    return Registry(Settings(home=session_home))


@pytest.fixture(scope="session")
def gemma(registry: Registry):
    """The embedded model, loaded once for the whole session."""
    return registry.load(EMBEDDED)


@pytest.fixture(scope="session")
def gemma_gguf(gemma) -> Path:
    return gemma.model_path


@pytest.fixture()
def fresh_registry(tmp_path: Path, session_home: Path) -> Registry:
    """A registry with an empty models/ directory, sharing the session's assembled GGUF cache."""
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    for f in (session_home / "cache").glob("*"):
        (home / "cache" / f.name).symlink_to(f)
    return Registry(Settings(home=home))


def seed_guard(home: Path) -> None:
    """Give a test's fresh home the session's int8 guardrail encoder. It is derived from the pinned
    weights once per home (about 10 s with torch); deriving it again in every test's home would
    only measure that. A home without it still builds its own (tests/safety test that path)."""
    import shutil

    session = os.environ.get("GENLAB_HOME")
    if not session or Path(session) == Path(home):
        return
    from genlab.generators.embedding import GuardEncoder, guard_encoder

    name = f"all-minilm-l6-v2.l{GuardEncoder.LAYERS}.int8.onnx"
    built = Path(session) / "cache" / name
    if not built.is_file():
        guard_encoder(Settings(home=Path(session)))
    target = Path(home) / "cache" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
    # the guardrail also reads the embedded Gemma's token embeddings: link the session's assembled
    # GGUF and copy its verification stamp (it names the linked file's size and mtime)
    from genlab.backends.llamacpp import embedded_gguf_path

    gguf = embedded_gguf_path(Settings(home=Path(session)))
    for source in (gguf, gguf.with_name(gguf.name + ".verified.json")):
        link = Path(home) / "cache" / source.name
        if not link.exists():
            link.symlink_to(source) if source == gguf else shutil.copyfile(source, link)


def genlab_cli(
    *args: str, home: Path, stdin: str | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the installed `genlab` console script in a real subprocess (``env``: extra variables)."""
    script = Path(sys.executable).with_name("genlab")
    seed_guard(home)
    env = {**os.environ, "GENLAB_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def binomial_floor(p: float, n: int, z: float = 4.0) -> float:
    """The lowest share of n independent draws a rate p gives on any machine, z standard deviations
    below p. Seeded samples are fixed on one CPU but not across CPUs and builds (floating-point
    paths differ), so a threshold must hold for any draw, not only for the one a machine drew:
    e.g. vae-digits (card 0.942) drew 0.97, 0.96, 0.89, 0.97, 0.93 on five seed sets of 100."""
    return p - z * (p * (1 - p) / n) ** 0.5


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(home: Path, port: int, **env: str) -> subprocess.Popen:
    """`genlab serve` in a real subprocess on GENLAB_HOME=home, returned once /health answers.
    Its stdout and stderr are pipes (text): read them with ``communicate`` after stopping it."""
    import time

    import httpx

    script = Path(sys.executable).with_name("genlab")
    seed_guard(home)
    proc = subprocess.Popen(
        [str(script), "serve", "--port", str(port)],
        env={**os.environ, "GENLAB_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read())


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user's mistake: non-zero exit, one line on stderr that says what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


WORDS = [
    "the",
    "king",
    "queen",
    "lord",
    "lady",
    "love",
    "death",
    "night",
    "day",
    "sword",
    "crown",
    "heart",
    "blood",
    "fair",
    "sweet",
    "good",
    "noble",
    "speak",
    "thou",
    "thee",
    "hath",
    "doth",
    "wherefore",
    "art",
    "gentle",
    "brother",
    "sister",
    "father",
    "mother",
]


def write_corpus(folder: Path, n_docs: int = 12, lines: int = 150, seed: int = 1) -> Path:
    """A small synthetic play-like corpus the tests make themselves (nothing downloaded)."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        speakers = ["KING", "QUEEN", "LORD"]
        text = "\n".join(
            f"{rng.choice(speakers)}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) + "."
            for _ in range(lines)
        )
        (folder / f"act{i:02d}.txt").write_text(text + "\n")
    return folder


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "plays")


@pytest.fixture(scope="session")
def trained_bpe(registry: Registry, corpus_dir: Path) -> str:
    """A tiny BPE transformer trained once per session (a few seconds)."""
    from genlab.training.text import train_text_model

    train_text_model(
        "plays-bpe",
        str(corpus_dir),
        codec="bpe",
        vocab_size=320,
        preset_name="tiny",
        steps=300,
        settings=registry.settings,
        progress=False,
    )
    return "plays-bpe"


@pytest.fixture(scope="session")
def postgres_url():
    from .pg import temporary_postgres

    with temporary_postgres() as url:
        yield url
