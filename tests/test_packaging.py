"""What ships, ships: the built wheel, installed into a fresh virtual environment, runs
`genlab guard eval` from outside the repository (its labelled sets are package data)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, **kwargs) -> str:
    """A command that must succeed; its standard output."""
    done = subprocess.run(
        [str(c) for c in command], check=True, capture_output=True, text=True, timeout=600, **kwargs
    )
    return done.stdout


@pytest.mark.slow
def test_the_wheel_runs_guard_eval_outside_the_repository(tmp_path):
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT)
    (wheel,) = dist.glob("genlab-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # genlab from the wheel; its dependencies (torch, llama.cpp ...) from the test environment, whose
    # editable genlab is not on the path (a .pth line adds a folder, not the .pth files inside it)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    assert run(python, "-c", "import genlab; print(genlab.__file__)", cwd=tmp_path).startswith(str(venv))
    env = {"GENLAB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    report = json.loads(run(venv / "bin" / "genlab", "guard", "eval", "--json", cwd=tmp_path, env=env))
    assert report["pii"]["overall"]["recall"] > 0 and "prompt_injection" in report
