"""Install the pinned llama-cpp-python, showing the llama.cpp compile as it goes.

`pip install llama-cpp-python` compiles llama.cpp from source the first time (there is no CPU wheel
on PyPI); pip alone prints only "Building wheel ... still running" for the 5-15 minutes that takes.
This runs the same pip install verbosely and prints one line per tenth of the build (the build
tool's own "[N/M]" counter), so a first `make run` says what it is doing. pip caches the wheel it
builds: later installs take seconds, and say so. Builds use every core (CMAKE_BUILD_PARALLEL_LEVEL).

    python scripts/install_llama.py            # what `make run` and `make test` call first
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections import deque
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
STEP = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]\s*(.*)")  # ninja: "[12/150] Building C object ..."
PERCENT = re.compile(r"\[\s*(\d+)%\]\s*(.*)")  # make: "[ 45%] Building C object ..."


def pinned_version(pyproject: Path = PYPROJECT) -> str:
    found = re.search(r'"llama-cpp-python==([^"\]]+)"', pyproject.read_text("utf-8"))
    if not found:
        raise SystemExit("error: pyproject.toml does not pin llama-cpp-python==X")
    return found.group(1)


def progress(line: str) -> tuple[float, str] | None:
    """(share done, what) from one line of the build's output, or None."""
    m = STEP.search(line)
    if m and int(m.group(2)) > 0:
        return int(m.group(1)) / int(m.group(2)), m.group(3)
    m = PERCENT.search(line)
    if m:
        return int(m.group(1)) / 100, m.group(2)
    return None


def what(text: str) -> str:
    """The file a build step works on: "Building C object .../ggml-cpu.c.o" -> "ggml-cpu.c"."""
    name = text.strip().split()[-1] if text.strip() else ""
    return Path(name).name.removesuffix(".o") or text.strip()[:60]


def main() -> int:
    wanted = pinned_version()
    with contextlib.suppress(PackageNotFoundError):
        if version("llama_cpp_python") == wanted:
            print(f"llama-cpp-python {wanted} is installed")
            return 0
    print(
        f"installing llama-cpp-python {wanted}: the first time compiles llama.cpp (about 6 minutes "
        "on 2 cores, up to 15 on a busy machine); pip caches the wheel, so later installs take seconds",
        flush=True,
    )
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    command = [sys.executable, "-m", "pip", "install", "-v", f"llama-cpp-python=={wanted}"]
    started, shown, tail, cached = time.monotonic(), -1, deque(maxlen=40), False
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if not cached and "Using cached llama_cpp_python" in line and ".whl" in line:
                cached = True
                print("  using the wheel pip cached from an earlier build", flush=True)
            step = progress(line)
            if step is not None and int(step[0] * 10) > shown:
                shown = int(step[0] * 10)
                elapsed = time.monotonic() - started
                print(f"  compiling llama.cpp: {step[0]:4.0%} ({what(step[1])}), {elapsed:.0f} s", flush=True)
    if proc.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
        print(
            "error: llama-cpp-python did not build; it needs a C/C++ compiler and cmake "
            "(Debian: apt-get install build-essential cmake)",
            file=sys.stderr,
        )
        return proc.returncode
    print(f"llama-cpp-python {wanted} installed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
