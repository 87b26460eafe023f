"""Run model-written Python in a sandboxed subprocess, and measure what its tests cover.

Generated tests are untrusted code. Each run gets:

- a fresh scratch directory under ``GENLAB_HOME/scratch`` (removed afterwards) as its working
  directory, holding only the module under test and the tests;
- limits from the kernel (``setrlimit``): CPU seconds, address space, file size, open files; and a
  wall-clock timeout that kills the whole process group;
- no network: a new network namespace (``unshare -rn``, only a loopback that is down) where the
  kernel allows it, and always a Python audit hook that refuses sockets, subprocesses and writes
  outside the scratch directory;
- a bare environment (``python -I``: no user site, no PYTHON* variables; no proxies or keys).

The audit hook is defence in depth, not a boundary against hostile code (``ctypes`` can get
around it); the namespace and the rlimits are the kernel's. A test run reports pytest's exit code
and, through coverage.py, the lines of the module its tests executed.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from genlab.settings import Settings

# Runs inside the sandbox: install the fence, then pytest under coverage, then write the result.
_DRIVER = r"""
import json, os, sys
SCRATCH = os.path.realpath(os.getcwd())

def _fence(event, args):
    if event.startswith("socket."):
        raise PermissionError(f"sandbox: no network ({event})")
    if event.startswith(("subprocess.", "os.exec", "os.spawn", "os.posix_spawn")) or event in (
            "os.system", "os.fork", "os.forkpty", "pty.spawn", "webbrowser.open"):
        raise PermissionError(f"sandbox: no new processes ({event})")
    if event == "open" and len(args) > 1 and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
        path = args[0]
        if isinstance(path, (str, bytes)) and not isinstance(path, int):
            p = os.path.realpath(os.fsdecode(path))
            if not (p == SCRATCH or p.startswith(SCRATCH + os.sep) or p.startswith("/dev/null")):
                raise PermissionError(f"sandbox: writes stay in the scratch directory ({p})")
    if event in ("os.remove", "os.rename", "os.rmdir", "shutil.rmtree", "os.mkdir") and args:
        p = os.path.realpath(os.fsdecode(args[0])) if isinstance(args[0], (str, bytes)) else SCRATCH
        if not (p == SCRATCH or p.startswith(SCRATCH + os.sep)):
            raise PermissionError(f"sandbox: changes stay in the scratch directory ({p})")

import coverage, pytest
module, tests, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
cov = coverage.Coverage(branch=False, include=[os.path.join(SCRATCH, module + ".py")], data_file=None)
sys.addaudithook(_fence)
cov.start()
rc = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", SCRATCH, "--no-header",
                  "-o", "addopts=", *tests])
cov.stop()
_, statements, _, missing, _ = cov.analysis2(os.path.join(SCRATCH, module + ".py"))
with open(out, "w") as f:
    json.dump({"exit_code": int(rc), "statements": statements, "missing": missing}, f)
"""


@dataclass
class Limits:
    """What one sandboxed run may use."""

    seconds: float = 20.0  # wall clock; CPU time is limited to the same
    memory_mb: int = 1024  # address space
    file_mb: int = 16  # largest file it may write
    open_files: int = 256


@dataclass
class TestRun:
    __test__ = False  # not a pytest test class, whatever its name
    """pytest's verdict and the module lines the tests executed."""

    exit_code: int  # pytest: 0 passed, 1 failed, 2 interrupted / collection error, 5 no tests; -1 killed
    statements: list[int] = field(default_factory=list)
    covered: set[int] = field(default_factory=set)
    output: str = ""
    timed_out: bool = False

    @property
    def built(self) -> bool:
        """The tests were collected: they parse and import (TestGen-LLM's "builds")."""
        return self.exit_code in (0, 1)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


@functools.cache
def network_namespace_available() -> bool:
    """Whether ``unshare -rn`` works here (user namespaces may be off, e.g. in some containers)."""
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _limit(limits: Limits):
    def apply() -> None:
        os.setsid()
        cpu = max(1, int(limits.seconds) + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_tests(
    module_name: str,
    module_source: str,
    tests: dict[str, str],
    *,
    limits: Limits | None = None,
    settings: Settings | None = None,
) -> TestRun:
    """Run ``tests`` (file name -> source) against the module in a fresh sandbox."""
    limits = limits or Limits()
    settings = settings or Settings.from_env()
    root = settings.home / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sandbox-", dir=root))
    try:
        (scratch / f"{module_name}.py").write_text(module_source, "utf-8")
        for name, source in tests.items():
            (scratch / name).write_text(source, "utf-8")
        (scratch / "_driver.py").write_text(_DRIVER, "utf-8")
        command = [sys.executable, "-I", "-B", "_driver.py", module_name, *tests, "_result.json"]
        if network_namespace_available():
            command = ["unshare", "-rn", *command]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "LANG": "C.UTF-8", "TMPDIR": str(scratch)}
        proc = subprocess.Popen(
            command,
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limit(limits),
        )
        try:
            output, _ = proc.communicate(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return TestRun(-1, output=output.decode("utf-8", "replace")[-4000:], timed_out=True)
        text = output.decode("utf-8", "replace")[-4000:]
        result = scratch / "_result.json"
        if not result.is_file():  # killed by a limit, or the module itself crashed the interpreter
            return TestRun(-1, output=text)
        data = json.loads(result.read_text("utf-8"))
        statements = data["statements"]
        covered = set(statements) - set(data["missing"])
        return TestRun(data["exit_code"], statements, covered, text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
