"""Run model- or user-written Python in a real sandbox, and measure what its tests cover.

Generated (or submitted) tests and the module they test are untrusted code. Each run is isolated by
bubblewrap (Debian's ``bubblewrap``, the sandbox Flatpak uses), never by checks of our own:

- a new user, PID, network, IPC, UTS and mount namespace (``--unshare-all``), running as
  ``nobody`` with every capability dropped, in its own session;
- a filesystem built from nothing: the system's ``/usr`` and the Python installation read-only, a
  private ``/tmp``, and one writable directory (``/sandbox``: the module, the tests, the result).
  Nothing else of the host is there: not ``GENLAB_HOME``, its database or keys, not ``/root``;
- no network at all (an empty network namespace);
- limits from the kernel: CPU seconds, address space, file size, open files, and processes (a
  ``pids`` cgroup where one can be made, else ``RLIMIT_NPROC``);
- a deadline on the whole run: past it the sandbox is killed, and with its PID namespace every
  process it started, however it daemonised; output goes to a file whose size is limited, so
  reading it never waits on a straggler;
- a bare environment (``python -I``: no user site, no PYTHON* variables; no proxies or keys).

When bubblewrap is missing or cannot make namespaces here, ``SandboxUnavailable`` says what to
install: untrusted code never runs unisolated. A run reports pytest's exit code and, through
coverage.py, the lines of the module its tests executed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from genlab.core import GenlabError, InvalidRequestError
from genlab.core.settings import Settings

# Runs inside the sandbox: pytest under coverage, then the result as JSON.
_DRIVER = r"""
import json, os, sys
SCRATCH = os.path.realpath(os.getcwd())

import coverage, pytest
module, tests, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
cov = coverage.Coverage(branch=False, include=[os.path.join(SCRATCH, module + ".py")], data_file=None)
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

    seconds: float = 20.0  # wall clock for the whole run; CPU time is limited to the same
    memory_mb: int = 1024  # address space of each process
    file_mb: int = 16  # largest file it may write (its output included)
    open_files: int = 256
    processes: int = 32  # processes and threads at once (a fork bomb stops here)

    def __post_init__(self) -> None:
        if not (0 < self.seconds <= 120 and 64 <= self.memory_mb <= 4096 and 1 <= self.file_mb <= 64):
            raise InvalidRequestError("sandbox limits: at most 120 s, 64-4096 MB of memory, 1-64 MB per file")


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


class SandboxUnavailable(GenlabError):
    """Isolation cannot be had here: the code is not run at all."""

    exit_code = 8
    http_status = 503
    error_type = "server_error"


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate code here, or None when it can (checked once per process)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed: apt-get install bubblewrap"
    try:
        probe = subprocess.run(
            [*_bwrap_base(Path("/tmp")), "--", "/usr/bin/true"], capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"bubblewrap could not start: {e}"
    if probe.returncode != 0:
        detail = probe.stderr.decode("utf-8", "replace").strip()[:200]
        return f"bubblewrap cannot make namespaces here ({detail}); allow unprivileged user namespaces"
    return None


def require_sandbox() -> None:
    problem = bubblewrap_problem()
    if problem is not None:
        raise SandboxUnavailable(f"refusing to run untrusted code without a sandbox: {problem}")


def _system_mounts() -> list[str]:
    """/usr read-only, and the merged-/usr links (or directories) of /bin, /lib, /lib64, /sbin."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    return args


def _python_mounts() -> list[str]:
    """The Python installation and this environment's packages (pytest, coverage), read-only."""
    roots = {Path(p).resolve() for p in (sys.base_prefix, sys.prefix)}
    roots |= {Path(sys.executable).resolve().parent.parent}
    args = []
    for root in sorted(roots):
        if not str(root).startswith("/usr/"):
            args += ["--ro-bind", str(root), str(root)]
    if Path(sys.prefix) != Path(sys.prefix).resolve():
        args += ["--ro-bind", str(Path(sys.prefix).resolve()), sys.prefix]
    return args


def _bwrap_base(scratch: Path) -> list[str]:
    # Order matters: bwrap mounts left to right, so the private /tmp, /proc and /dev come first and
    # the read-only installation (which may itself live under /tmp, e.g. a CI checkout) on top.
    namespaces = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    identity = ["--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv"]
    private = ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    work = ["--bind", str(scratch), "/sandbox", "--chdir", "/sandbox"]
    env = [
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/sandbox",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "TMPDIR",
        "/tmp",
    ]
    return ["bwrap", *namespaces, *identity, *private, *_system_mounts(), *_python_mounts(), *work, *env]


class ProcessCap:
    """A ``pids`` cgroup that caps the sandbox's processes (v1 or v2, where this process may make
    one); ``None`` means RLIMIT_NPROC is the cap."""

    ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for root in self.ROOTS:
            if not (root / "cgroup.procs").is_file() or not os.access(root, os.W_OK):
                continue
            path = root / f"genlab-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(limit))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            self.path = path
            return

    def enter(self) -> None:  # in the child, before exec: it and all it starts are counted
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        if self.path is None:
            return
        for _ in range(50):  # the kernel empties it as the killed processes are reaped
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)


def _limit(limits: Limits, cap: ProcessCap):
    def apply() -> None:
        os.setsid()
        cap.enter()
        cpu = max(1, int(limits.seconds) + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if cap.path is None:  # counted per user: the sandbox's own processes plus the user's current ones
            running = len([p for p in os.listdir("/proc") if p.isdigit()])
            resource.setrlimit(resource.RLIMIT_NPROC, (running + limits.processes,) * 2)

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
    require_sandbox()
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
        command = [
            *_bwrap_base(scratch),
            "--",
            sys.executable,
            "-I",
            "-B",
            "_driver.py",
            module_name,
            *tests,
            "_result.json",
        ]
        return _run(command, scratch, limits)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(command: list[str], scratch: Path, limits: Limits) -> TestRun:
    """Start the sandbox, end it at the deadline (its PID namespace takes every descendant with it),
    and read what it left."""
    cap = ProcessCap(limits.processes)
    output_path = scratch.parent / f"{scratch.name}.out"  # outside /sandbox: the code cannot replace it
    try:
        with output_path.open("wb") as out:
            proc = subprocess.Popen(
                command,
                cwd=scratch,
                env={"PATH": "/usr/bin:/bin"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_limit(limits, cap),
            )
            try:
                proc.wait(timeout=limits.seconds)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        text = _tail(output_path, 4000)
    finally:
        cap.close()
        with contextlib.suppress(OSError):
            output_path.unlink()
    if timed_out:
        return TestRun(-1, output=text, timed_out=True)
    return _result(scratch / "_result.json", text)


def _tail(path: Path, chars: int) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - chars * 4))
        return f.read().decode("utf-8", "replace")[-chars:]


def _result(path: Path, text: str) -> TestRun:
    """The driver's verdict (written by sandboxed code: parsed as data and checked, never trusted)."""
    try:
        data = json.loads(path.read_text("utf-8")[:1_000_000])
        statements = [int(n) for n in data["statements"]]
        covered = set(statements) - {int(n) for n in data["missing"]}
        return TestRun(int(data["exit_code"]), statements, covered, text)
    except (OSError, ValueError, KeyError, TypeError):  # killed by a limit, or the result was tampered with
        return TestRun(-1, output=text)
