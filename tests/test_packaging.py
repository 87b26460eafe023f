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


@pytest.mark.slow
def test_the_wheel_runs_guard_eval_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, timeout=600)  # fmt: skip
    (wheel,) = dist.glob("genlab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())  # fmt: skip
    # genlab from the wheel; its dependencies (torch, llama.cpp ...) from the test environment, whose
    # editable genlab is not on the path (a .pth line adds a folder, not the .pth files inside it)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=600)  # fmt: skip
    where = subprocess.run([str(python), "-c", "import genlab; print(genlab.__file__)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    out = subprocess.run([str(venv / "bin" / "genlab"), "guard", "eval", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env={"GENLAB_HOME": str(tmp_path / "home"),
                                                                           "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["pii"]["overall"]["recall"] > 0 and "prompt_injection" in report
