"""Run model- or user-written Python in a real sandbox, and measure what its tests cover.

Generated (or submitted) tests and the module they test are untrusted code. Each run is isolated by
bubblewrap (Debian's ``bubblewrap``, the sandbox Flatpak uses), never by checks of our own:

- a new user, PID, network, IPC, UTS and mount namespace (``--unshare-all``), running as
  ``nobody`` with every capability dropped, in its own session; no namespace of its own within
  (``--disable-userns`` where bubblewrap has it, and the seccomp filter of ``apps.seccomp``, which
  also refuses netlink and every socket family but Unix, IPv4 and IPv6, and io_uring);
- a filesystem built from nothing: the system's ``/usr`` and the Python installation read-only, and
  two tmpfs, ``/tmp`` and ``/sandbox`` (the module, the tests, copied in), each no larger than the
  run's memory. Nothing else of the host is there: not ``GENLAB_HOME``, its database or keys, not
  ``/root``. The one file it writes for the host (``_result.json``) is a host file bound in: a mount
  point, which it can write (up to the file limit) but not replace; the host reads it as a file
  anyone could have made (``core.io.read_regular_file``: no link, no FIFO, at most 1 MB);
- no network at all (an empty network namespace);
- one memory and one process limit for the whole sandbox: its own cgroup (v2, or v1's ``memory``
  and ``pids``) where one can be made below this process's, charged with every process it starts
  and the pages of its tmpfs; where none can, ``RLIMIT_NPROC`` and the host's watch of its memory
  (``MemoryWatch``). Per process besides: CPU seconds, address space, file size, open files;
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
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from genlab.apps import seccomp
from genlab.core import GenlabError, InvalidRequestError
from genlab.core.io import read_regular_file
from genlab.core.settings import Settings

RESULT = "_result.json"  # the one file the sandbox writes for the host

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
    memory_mb: int = 1024  # the whole sandbox: its processes together, and each of its tmpfs (/tmp, /sandbox)
    file_mb: int = 16  # largest file it may write (its output included)
    open_files: int = 256
    processes: int = 32  # processes and threads at once (a fork bomb stops here)

    def __post_init__(self) -> None:
        if not (0 < self.seconds <= 120 and 64 <= self.memory_mb <= 4096 and 1 <= self.file_mb <= 64):
            raise InvalidRequestError("sandbox limits: at most 120 s, 64-4096 MB of memory, 1-64 MB per file")

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 2**20


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
def _bwrap_options() -> frozenset[str]:
    """The options this bubblewrap knows (its ``--help``): ``--size`` and ``--disable-userns`` are recent."""
    try:
        help_text = subprocess.run(["bwrap", "--help"], capture_output=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"--[a-z-]+", help_text.decode("utf-8", "replace")))


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate code here, or None when it can (checked once per process)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed: apt-get install bubblewrap"
    if "--size" not in _bwrap_options():
        return "this bubblewrap cannot limit a tmpfs (no --size): install bubblewrap 0.8 or later"
    if seccomp.machine_arch() is None:
        return f"no seccomp filter is written for this machine ({platform.machine()})"
    try:
        filter_fd = seccomp.filter_fd()
        try:
            command = [*_bwrap_base(Limits()), "--seccomp", str(filter_fd), "--", "/usr/bin/true"]
            probe = subprocess.run(command, capture_output=True, timeout=20, pass_fds=(filter_fd,))
        finally:
            os.close(filter_fd)
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


def _bwrap_base(limits: Limits) -> list[str]:
    # Order matters: bwrap mounts left to right, so the private /tmp, /proc and /dev come first and
    # the read-only installation (which may itself live under /tmp, e.g. a CI checkout) on top.
    namespaces = [
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if "--disable-userns" in _bwrap_options():  # the seccomp filter refuses them too (older bubblewrap)
        namespaces.append("--disable-userns")
    identity = ["--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv"]
    size = ["--size", str(limits.memory_bytes)]  # a tmpfs is memory: each is held to the sandbox's
    private = [*size, "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    work = [*size, "--tmpfs", "/sandbox", "--chdir", "/sandbox"]
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


def _own_cgroups() -> list[tuple[Path, set[str]]]:
    """This process's cgroup in each mounted hierarchy, with the controllers of ``Cgroup.WANTED`` a
    child of it can have: v2 those its ``cgroup.subtree_control`` delegates, v1 the hierarchy's own."""
    mountpoints: dict[str, Path] = {}  # a v1 controller, or "" for v2 -> where it is mounted
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, options, *_ = line.split()
        names = [""] if fstype == "cgroup2" else options.split(",") if fstype == "cgroup" else []
        for name in names:
            mountpoints.setdefault(name, Path(mountpoint))
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():  # "id:controllers:path"
        _, controllers, path = line.split(":", 2)
        wanted = set(controllers.split(",")) & set(Cgroup.WANTED) if controllers else {""}
        if not wanted or next(iter(wanted)) not in mountpoints:
            continue
        own = mountpoints[next(iter(wanted))] / path.lstrip("/")
        if wanted == {""}:
            with contextlib.suppress(OSError):
                wanted = set((own / "cgroup.subtree_control").read_text().split()) & set(Cgroup.WANTED)
        found.append((own, wanted - {""}))
    return found


class Cgroup:
    """The sandbox's own cgroup: one limit on the processes and one on the memory of everything it
    runs (bwrap, pytest, every child, and the pages of its tmpfs files: the kernel charges them to
    the cgroup that wrote them), made below this process's own cgroup wherever it may make one (v2:
    one directory for both; v1: one in the ``pids`` and one in the ``memory`` hierarchy). Without a
    ``pids`` controller RLIMIT_NPROC caps the processes; without ``memory``, ``MemoryWatch`` does."""

    WANTED = ("pids", "memory")

    def __init__(self, limits: Limits) -> None:
        self.paths: list[Path] = []
        self.controllers: set[str] = set()
        name = f"genlab-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for own, available in _own_cgroups():
            wanted = (available & set(self.WANTED)) - self.controllers
            if wanted and self._make(own / name, wanted, limits):
                self.controllers |= wanted

    def _make(self, path: Path, controllers: set[str], limits: Limits) -> bool:
        version2 = (path.parent / "cgroup.subtree_control").exists()
        try:
            path.mkdir()
            if "pids" in controllers:
                (path / "pids.max").write_text(str(limits.processes))
            if "memory" in controllers:
                limit = str(limits.memory_bytes)
                (path / ("memory.max" if version2 else "memory.limit_in_bytes")).write_text(limit)
                for extra, value in (("memory.swap.max", "0"), ("memory.memsw.limit_in_bytes", limit)):
                    with contextlib.suppress(OSError):  # no swap to hide in, where the kernel has the file
                        (path / extra).write_text(value)
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return False
        self.paths.append(path)
        return True

    def enter(self) -> None:  # in the child, before exec: it and all it starts are counted
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def out_of_memory(self) -> bool:
        """The kernel killed a process of the sandbox at its memory limit (``oom_kill`` in v2's
        ``memory.events``, v1's ``memory.oom_control``)."""
        for path in self.paths:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError, ValueError):
                    counts = dict(line.split() for line in (path / name).read_text().splitlines())
                    if int(counts.get("oom_kill", 0)) > 0:
                        return True
        return False

    def close(self) -> None:
        for path in self.paths:
            for _ in range(50):  # the kernel empties it as the killed processes are reaped
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def _proportional_memory(root: int) -> int:
    """Bytes of memory held by process ``root`` and all below it (PSS: a page shared by n processes
    counts 1/n to each, so forked children are not counted n times)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


class MemoryWatch(threading.Thread):
    """Where no memory cgroup can be had: the host sums the sandbox's memory ten times a second and
    ends the whole sandbox when it holds more than its limit (each process is also held by
    RLIMIT_AS, so no one of them can jump far past it between two looks)."""

    def __init__(self, pid: int, limits: Limits) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit = pid, limits.memory_bytes
        self.stopped, self.exceeded = threading.Event(), False

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            if _proportional_memory(self.pid) > self.limit:
                self.exceeded = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                return


def _limit(limits: Limits, cgroup: Cgroup):
    def apply() -> None:
        os.setsid()
        cgroup.enter()
        cpu = max(1, int(limits.seconds) + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if "pids" not in cgroup.controllers:  # per user: the sandbox's processes plus the user's current ones
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
    files = {f"{module_name}.py": module_source, **tests, "_driver.py": _DRIVER}
    for name in [module_name + ".py", *tests]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.py", name) or name in ("_driver.py", RESULT):
            raise InvalidRequestError(f"sandbox file names are Python module names: {name!r} is not one")
    require_sandbox()
    limits = limits or Limits()
    settings = settings or Settings.from_env()
    root = settings.home / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sandbox-", dir=root))  # only the result and the output
    try:
        program = [sys.executable, "-I", "-B", "_driver.py", module_name, *tests, RESULT]
        return _run(files, program, scratch, limits)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _memory_file(name: str, text: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, text.encode("utf-8"))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _run(files: dict[str, str], program: list[str], scratch: Path, limits: Limits) -> TestRun:
    """Start the sandbox, end it at the deadline (its PID namespace takes every descendant with it),
    and read what it left. The files are copied into its tmpfs (``--file``); the one file it writes
    for the host is bound in (a mount point: it cannot be replaced, only written, up to RLIMIT_FSIZE)."""
    (scratch / RESULT).touch()
    fds: list[int] = []
    cgroup = Cgroup(limits)
    try:
        copies = []
        for name, text in files.items():
            fds.append(_memory_file(name, text))
            copies += ["--file", str(fds[-1]), f"/sandbox/{name}"]
        fds.append(seccomp.filter_fd())
        result = ["--bind", str(scratch / RESULT), f"/sandbox/{RESULT}", "--seccomp", str(fds[-1])]
        with tempfile.TemporaryFile(dir=scratch) as out:  # no name: nothing can replace it
            proc = subprocess.Popen(
                [*_bwrap_base(limits), *copies, *result, "--", *program],
                cwd=scratch,
                env={"PATH": "/usr/bin:/bin"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=tuple(fds),
                preexec_fn=_limit(limits, cgroup),
            )
            timed_out, over_memory = _wait(proc, limits, "memory" not in cgroup.controllers)
            over_memory = over_memory or cgroup.out_of_memory()
            text = _tail(out, 4000)
    finally:
        cgroup.close()
        for fd in fds:
            os.close(fd)
    if over_memory:
        return TestRun(-1, output=f"{text}\n[sandbox ended: over its {limits.memory_mb} MB of memory]")
    if timed_out:
        return TestRun(-1, output=text, timed_out=True)
    return _result(scratch / RESULT, text)


def _wait(proc: subprocess.Popen, limits: Limits, watch_memory: bool) -> tuple[bool, bool]:
    """Wait for the sandbox to end, killing it at the deadline: (timed out, ended for its memory)."""
    watch = MemoryWatch(proc.pid, limits) if watch_memory else None
    if watch is not None:
        watch.start()
    try:
        proc.wait(timeout=limits.seconds)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if watch is not None:
        watch.stopped.set()
        watch.join()
    return timed_out, watch is not None and watch.exceeded


def _tail(out, chars: int) -> str:
    out.seek(max(0, os.fstat(out.fileno()).st_size - chars * 4))
    return out.read().decode("utf-8", "replace")[-chars:]


def _result(path: Path, text: str) -> TestRun:
    """The driver's verdict (written by sandboxed code: parsed as data and checked, never trusted;
    read only from a regular file of at most 1 MB, never through a link or from a FIFO)."""
    try:
        data = json.loads(read_regular_file(path, 1_000_000).decode("utf-8"))
        statements = [int(n) for n in data["statements"]]
        covered = set(statements) - {int(n) for n in data["missing"]}
        return TestRun(int(data["exit_code"]), statements, covered, text)
    except (OSError, ValueError, KeyError, TypeError):  # killed by a limit, or the result was tampered with
        return TestRun(-1, output=text)
