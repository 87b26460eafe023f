"""Install the pinned llama-cpp-python, showing the llama.cpp compile as it goes.

`pip install llama-cpp-python` compiles llama.cpp from source the first time (there is no CPU wheel
on PyPI); pip alone prints only "Building wheel ... still running" for the 5-15 minutes that takes.
This runs the same pip install verbosely and prints one line per tenth of the build (the build
tool's own "[N/M]" counter), so a first `make run` says what it is doing. Builds use every core
(CMAKE_BUILD_PARALLEL_LEVEL).

The build is native (``-march=native``) without Intel AMX: llama.cpp's AMX kernels crash
(``ggml_backend_amx_mul_mat``, llama.cpp #20824) on Sapphire-Rapids-class CPUs with Q4_K weights,
the embedded Gemma's, at the first prompt of more than one token, so ``CMAKE_ARGS`` turns them off
(``-mno-amx-*``: AVX-512 stays). A user's own ``CMAKE_ARGS`` replaces these. The wheel is kept in
``~/.cache/genlab/wheels/<version>-<hash of CMAKE_ARGS>/`` (pip's own wheel cache ignores
``CMAKE_ARGS``, so it would hand back a wheel built with other flags): later installs take
seconds, and say so. The flags of the installed build are written beside it in the venv, so a
venv built with other flags is rebuilt.

    python scripts/install_llama.py            # what `make run` and `make test` call first
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
STEP = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]\s*(.*)")  # ninja: "[12/150] Building C object ..."
PERCENT = re.compile(r"\[\s*(\d+)%\]\s*(.*)")  # make: "[ 45%] Building C object ..."
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
DEFAULT_CMAKE_ARGS = f'-DCMAKE_C_FLAGS="{NO_AMX}" -DCMAKE_CXX_FLAGS="{NO_AMX}"'
MARKER = Path(sys.prefix) / "genlab-llama-build.json"  # the version and flags of the installed build


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


def cmake_args() -> str:
    return os.environ.get("CMAKE_ARGS") or DEFAULT_CMAKE_ARGS


def wheel_dir(wanted: str, args: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (
        cache
        / "genlab"
        / "wheels"
        / f"llama-cpp-python-{wanted}-{hashlib.sha256(args.encode()).hexdigest()[:12]}"
    )


def installed_build() -> dict | None:
    with contextlib.suppress(PackageNotFoundError, OSError, ValueError):
        marker = json.loads(MARKER.read_text("utf-8"))
        return marker if marker.get("version") == version("llama_cpp_python") else None
    return None


def main() -> int:
    wanted, args = pinned_version(), cmake_args()
    if installed_build() == {"version": wanted, "cmake_args": args}:
        print(f"llama-cpp-python {wanted} is installed")
        return 0
    wheels = wheel_dir(wanted, args)
    started = time.monotonic()
    if not list(wheels.glob("llama_cpp_python-*.whl")):
        print(
            f"building llama-cpp-python {wanted}: compiles llama.cpp (about 6 minutes on 2 cores, up to "
            "15 on a busy machine) once; the wheel is kept, so later installs take seconds",
            flush=True,
        )
        code = build_wheel(wanted, args, wheels)
        if code != 0:
            return code
    else:
        print(f"  using the wheel built earlier ({wheels})", flush=True)
    wheel = sorted(wheels.glob("llama_cpp_python-*.whl"))[-1]
    command = [sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(wheel)]
    if subprocess.run(command, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        print(f"error: pip could not install {wheel}", file=sys.stderr)
        return 1
    # its own dependencies (numpy, jinja2, ...) from the index as usual
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", str(wheel)], check=False)
    MARKER.write_text(json.dumps({"version": wanted, "cmake_args": args}) + "\n", "utf-8")
    print(f"llama-cpp-python {wanted} installed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


def build_wheel(wanted: str, args: str, wheels: Path) -> int:
    """``pip wheel`` the pinned sdist into ``wheels``, printing the compile's progress."""
    env = {**os.environ, "CMAKE_ARGS": args, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    tmp = wheels.with_name(wheels.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed build left
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir", "-w", str(tmp)]
    command.append(f"llama-cpp-python=={wanted}")
    started, shown, tail = time.monotonic(), -1, deque(maxlen=40)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
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
    wheels.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(wheels, ignore_errors=True)
    os.replace(tmp, wheels)  # the folder appears whole, or not at all
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
