"""The Trainer on a tiny text task: determinism, exact resume, safety of checkpoints."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from genlab.core import InvalidRequestError, ModelExistsError, ModelLoadError
from genlab.core.settings import Settings
from genlab.registry import Registry
from genlab.training.checkpoint import load_checkpoint
from genlab.training.text import train_text_model
from genlab.training.trainer import TrainConfig, learning_rate


def _train(home, corpus_dir, name, **kw):
    kw = {"codec": "char", "preset_name": "tiny", "steps": 40, "progress": False, **kw}
    return train_text_model(name, str(corpus_dir), settings=Settings(home=home), **kw)


def _weights(home, name):
    cfg = json.loads((home / "models" / name / "config.json").read_text())
    return load_file(str(home / "models" / name / cfg["weights"]))


def test_learning_rate_warms_up_then_decays_to_min():
    cfg = TrainConfig(steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert learning_rate(0, cfg) == pytest.approx(1e-4)
    assert learning_rate(9, cfg) == pytest.approx(1e-3)
    assert learning_rate(55, cfg) == pytest.approx(5.5e-4, rel=0.02)
    assert learning_rate(100, cfg) == pytest.approx(1e-4)


def test_training_lowers_validation_loss_and_publishes_a_model(tmp_path, corpus_dir):
    result = _train(tmp_path, corpus_dir, "m", steps=200, overrides={"eval_every": 50})
    losses = [h["val_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8
    registry = Registry(Settings(home=tmp_path))
    card = registry.get("m").card
    assert card.metrics["bits_per_char"] == pytest.approx(result.best_metrics["bits_per_char"], abs=1e-3)
    assert card.reproduce.startswith("genlab train text --data ") and "--preset tiny" in card.reproduce
    lm = registry.load("m")
    text = lm.generate("KING:", max_tokens=30, seed=1)[0].text
    assert len(text) == 30 or lm.generate("KING:", max_tokens=30, seed=1)[0].finish_reason == "stop"
    manifest = json.loads((tmp_path / "models" / "m" / "data_manifest.json").read_text())
    assert len(manifest["val"]) == 1


def test_same_seed_same_weights(tmp_path, corpus_dir):
    _train(tmp_path / "a", corpus_dir, "m", seed=3)
    _train(tmp_path / "b", corpus_dir, "m", seed=3)
    _train(tmp_path / "c", corpus_dir, "m", seed=4)
    a, b, c = (_weights(tmp_path / d, "m") for d in "abc")
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)


def test_resume_continues_exactly_where_it_stopped(tmp_path, corpus_dir):
    over = {"eval_every": 20}
    _train(tmp_path / "straight", corpus_dir, "m", steps=60, overrides=over)
    _train(tmp_path / "resumed", corpus_dir, "m", steps=20, overrides=over)
    result = _train(tmp_path / "resumed", corpus_dir, "m", steps=60, overrides=over, resume=True)
    assert result.step == 60
    straight = load_file(
        str(load_checkpoint(tmp_path / "straight" / "models" / "m")[0] / "model.safetensors")
    )
    resumed = load_file(str(load_checkpoint(tmp_path / "resumed" / "models" / "m")[0] / "model.safetensors"))
    for k in straight:
        assert (straight[k] == resumed[k]).all(), k


def test_bad_resumes_and_names(tmp_path, corpus_dir):
    _train(tmp_path, corpus_dir, "m", steps=20)
    with pytest.raises(ModelExistsError, match="--resume"):
        _train(tmp_path, corpus_dir, "m")
    with pytest.raises(InvalidRequestError, match="another architecture"):
        _train(tmp_path, corpus_dir, "m", preset_name="small", resume=True)
    with pytest.raises(InvalidRequestError, match="char codec, not bpe"):
        _train(tmp_path, corpus_dir, "m", codec="bpe", resume=True)
    with pytest.raises(InvalidRequestError, match="nothing to resume"):
        _train(tmp_path, corpus_dir, "other", resume=True)
    with pytest.raises(InvalidRequestError, match="unknown preset"):
        _train(tmp_path, corpus_dir, "x", preset_name="huge")
    assert not (tmp_path / "models" / "x").exists()


def test_block_size_longer_than_corpus_is_refused(tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text("a few words only")
    with pytest.raises(InvalidRequestError, match="not longer than the block size 64"):
        _train(tmp_path, folder, "m")


def test_corrupt_checkpoint_and_weights_are_detected(tmp_path, corpus_dir):
    _train(tmp_path, corpus_dir, "m", steps=20)
    ckpt, _ = load_checkpoint(tmp_path / "models" / "m")
    with open(ckpt / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 8)
    with pytest.raises(ModelLoadError, match="corrupt"):
        _train(tmp_path, corpus_dir, "m", steps=40, resume=True)
    cfg = json.loads((tmp_path / "models" / "m" / "config.json").read_text())
    with open(tmp_path / "models" / "m" / cfg["weights"], "r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 8)
    with pytest.raises(ModelLoadError, match="sha256 does not match"):
        Registry(Settings(home=tmp_path)).load("m")


KILL_SCRIPT = """
import sys
from genlab.core.settings import Settings
from genlab.training.text import train_text_model
home, data, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
train_text_model("k", data, codec="char", preset_name="tiny", steps=100000, settings=Settings(home=__import__("pathlib").Path(home)),
                 progress=False, resume=resume, overrides={"eval_every": 1, "eval_batches": 1})
"""


@pytest.mark.slow
def test_killing_training_mid_write_never_leaves_a_corrupt_model(tmp_path, corpus_dir):
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    registry = Registry(Settings(home=tmp_path))
    delays = [2.5, 0.9, 1.3, 0.7, 1.1, 0.8]
    for i, delay in enumerate(delays):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(corpus_dir), "1" if i else "0"]
        )
        deadline = time.monotonic() + 60
        while (
            not (tmp_path / "models" / "k" / "checkpoints" / "latest.json").exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        time.sleep(delay)  # checkpoints are written every step: the kill lands in or near a write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, state = load_checkpoint(tmp_path / "models" / "k")  # verifies the checksum
        assert state["step"] >= 1
        registry = Registry(Settings(home=tmp_path))
        lm = registry.load("k")  # published model: config -> snapshot, sha256 checked
        assert lm.generate("KING:", max_tokens=5, seed=0)[0].completion_tokens >= 1


@pytest.mark.slow
def test_ddp_with_two_processes_under_torchrun(tmp_path, corpus_dir):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "GENLAB_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [
        torchrun,
        *shlex.split("--nproc-per-node 2 --master-port 29517 -m genlab.cli.main train text --data"),
        str(corpus_dir),
        *shlex.split("--preset tiny --steps 40 --name ddp --json"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('  "name"')]
    assert len(summaries) == 1  # only rank 0 reports
    _, state = load_checkpoint(tmp_path / "models" / "ddp")
    assert state["world_size"] == 2 and state["step"] == 40
    assert state["history"][-1]["val_loss"] < 3.0
    lm = Registry(Settings(home=tmp_path)).load("ddp")
    assert lm.generate("KING:", max_tokens=10, seed=1)[0].text


@pytest.mark.slow
def test_gan_phases_under_torchrun_all_reduce_both_players(tmp_path):
    """Two optimisation phases under DDP: gradients of D and of G are averaged across ranks by hand."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "GENLAB_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [
        torchrun,
        *shlex.split(
            "--nproc-per-node 2 --master-port 29518 -m genlab.cli.main train image --family gan --data digits --preset tiny --steps 20 --name ddp-gan --json"
        ),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    directory, state = load_checkpoint(tmp_path / "models" / "ddp-gan")
    assert state["world_size"] == 2 and state["step"] == 20
    assert (directory / "optimizer-discriminator.safetensors").is_file()
    assert (directory / "optimizer-generator.safetensors").is_file()
    images = Registry(Settings(home=tmp_path)).load("ddp-gan").generate("3", n=2, seed=0)
    assert [a.label for a in images] == ["3", "3"]


def test_a_run_killed_before_its_first_checkpoint_can_simply_be_restarted(tmp_path, corpus_dir):
    leftover = tmp_path / "models" / "m"
    leftover.mkdir(parents=True)
    (leftover / "codec.json").write_text('{"kind": "char", "chars": ["a"]}')
    result = _train(tmp_path, corpus_dir, "m", steps=10)
    assert result.step == 10 and (leftover / "config.json").is_file()


def test_a_time_budget_stops_training_evaluated_and_published(tmp_path, corpus_dir):
    result = _train(
        tmp_path, corpus_dir, "m", steps=100_000, overrides={"max_seconds": 2.0, "eval_every": 10_000}
    )
    assert 1 <= result.step < 100_000
    assert result.history and result.history[-1]["step"] == result.step  # evaluated at the stop
    assert Registry(Settings(home=tmp_path)).get("m").card.metrics["step"] <= result.step  # published
