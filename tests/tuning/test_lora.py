"""`genlab tune lora` on the shipped SmolLM2-135M (a few steps on 2 cores): a tune killed mid-run
registers nothing and resumes from its checkpoint; the adapter, loaded by llama.cpp on the
quantised base, writes what the reviewers wrote; it is served by name through the live server;
a changed adapter or base is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from genlab.core import GenerationRequest, IntegrityError, ModelNotFoundError, SamplingParams
from genlab.core.settings import Settings
from genlab.registry import Registry

from ..conftest import genlab_cli
from ..server.conftest import LiveServer
from .decisions import BASE, RECIPE, prompt, seed

ADAPTER = f"{BASE}+{RECIPE}"
STEPS = 24
TUNE = ("tune", "lora", "--recipe", RECIPE, "--steps", str(STEPS), "--lr", "2e-3")


def greedy(registry: Registry, model: str, text: str) -> str:
    request = GenerationRequest(prompt=text, params=SamplingParams(max_tokens=10, temperature=0.0))
    return registry.load(model).generate(request)[0].text


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """A home whose reviewers edited a third of 12 marketing items into ``EDITED``, tuned: the first
    run killed (-9) after its first checkpoint, the second resuming it to the end."""
    home = tmp_path_factory.mktemp("tune-home")
    seed(home, 12)
    run_dir = Settings(home=home).home / "runs" / "tune" / ADAPTER
    killed = subprocess.Popen(
        [str(Path(sys.executable).with_name("genlab")), *TUNE],
        env={**os.environ, "GENLAB_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoint" / "state.json").is_file() and killed.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    step = json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"]
    assert 0 < step < STEPS, step  # killed mid-tune
    with pytest.raises(ModelNotFoundError):  # nothing registered by a tune that did not end
        Registry(Settings(home=home)).get(ADAPTER)
    resumed = genlab_cli(*TUNE, "--resume", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert ADAPTER in resumed.stdout and "estimated time" in resumed.stdout
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["step"] == STEPS and len(state["losses"]) == STEPS  # continued, not restarted
    return home


def test_the_adapter_on_the_quantised_base_writes_what_reviewers_wrote(tuned):
    registry = Registry(Settings(home=tuned))
    entry = registry.get(ADAPTER)
    assert entry.config["base"] == BASE and len(entry.config["review_items_sha256"]) == 12
    assert entry.card.metrics["tune"]["steps"] == STEPS and "marketing-copy" in entry.card.training_data
    assert not any(p.suffix == ".safetensors" or p.stat().st_size > 50e6 for p in entry.path.iterdir())
    edited = prompt(4)  # an item the reviewer rewrote
    assert "zebra" in greedy(registry, ADAPTER, edited).lower()
    assert "zebra" not in greedy(registry, BASE, edited).lower()  # the base itself is as it was


def test_the_adapter_is_served_by_name(tuned):
    from genlab.server.app import ServerConfig, create_app
    from genlab.storage import Store

    settings = Settings(home=tuned)
    app = create_app(Registry(settings), Store(settings=settings), ServerConfig(open_access=True))
    with LiveServer(app) as live:
        listed = httpx.get(f"{live.url}/v1/models", timeout=60).json()
        assert ADAPTER in {m["id"] for m in listed["data"]}
        texts = {}
        for model in (ADAPTER, BASE):
            body = {"model": model, "prompt": prompt(1), "max_tokens": 10, "temperature": 0}
            r = httpx.post(f"{live.url}/v1/completions", json=body, timeout=120)
            assert r.status_code == 200, r.text
            texts[model] = r.json()["choices"][0]["text"].lower()
        assert "zebra" in texts[ADAPTER] and "zebra" not in texts[BASE]


def test_a_changed_adapter_or_another_base_is_refused(tuned, tmp_path):
    """Attack: the adapter file swapped after registration, or the adapter claimed for a base it
    was not trained on; either is refused at load, naming the problem."""
    import shutil

    settings = Settings(home=tmp_path / "home")
    shutil.copytree(tuned / "models", settings.models_dir)
    directory = settings.models_dir / ADAPTER
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "base_sha256": "0" * 64}))
    with pytest.raises(IntegrityError, match="adapter for another"):
        Registry(settings).load(ADAPTER)
    (directory / "config.json").write_text(json.dumps(config))
    with (directory / "adapter.gguf").open("r+b") as f:
        f.seek(-64, 2)
        f.write(b"\x00" * 64)
    with pytest.raises(IntegrityError, match="missing or has changed"):
        Registry(settings).load(ADAPTER)
    assert greedy(Registry(settings), BASE, "Hello")  # the base still serves
