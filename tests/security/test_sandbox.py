"""Attacks on the sandbox that runs model- and user-written tests (tests/security: each test
performs the attack and fails if the boundary gives)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from genlab.apps import sandbox
from genlab.apps.sandbox import Limits, SandboxUnavailable, run_tests
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings

MODULE = "def one():\n    return 1\n"


def attack(body: str, tmp_path: Path, **limits) -> sandbox.TestRun:
    """Run ``body`` as a test inside the sandbox, with GENLAB_HOME = tmp_path/home."""
    test = "import os, sys, socket, subprocess, time\n\ndef test_attack():\n" + "".join(
        f"    {line}\n" for line in body.splitlines()
    )
    return run_tests(
        "m", MODULE, {"test_m.py": test}, limits=Limits(**limits), settings=Settings(home=tmp_path / "home")
    )


@pytest.fixture()
def database(tmp_path):
    """A genlab-like database with a user key, in GENLAB_HOME."""
    path = tmp_path / "home" / "genlab.db"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE api_keys (id INTEGER PRIMARY KEY, role TEXT)")
        db.execute("INSERT INTO api_keys (role) VALUES ('user')")
    return path


def test_the_database_of_genlab_home_is_out_of_reach(database, tmp_path):
    run = attack(
        f"import sqlite3\n"
        f"db = sqlite3.connect({str(database)!r})\n"
        f"db.execute(\"UPDATE api_keys SET role='admin'\")\n"
        f"db.commit()\n",
        tmp_path,
    )
    assert not run.passed
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT role FROM api_keys").fetchall() == [("user",)]


@pytest.mark.parametrize(
    "write",
    [
        "fd = os.open(TARGET, os.O_WRONLY | os.O_CREAT); os.write(fd, b'x'); os.close(fd)",
        "os.truncate(TARGET, 0)",
        "os.symlink('/etc/passwd', TARGET)",
        "import ctypes; libc = ctypes.CDLL(None); assert libc.creat(TARGET.encode(), 0o644) >= 0",
        "subprocess.run(['sh', '-c', 'echo x > ' + TARGET], check=True)",
    ],
)
def test_nothing_outside_its_directory_can_be_written(tmp_path, write):
    target = tmp_path / "home" / "victim.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("keep me")
    run = attack(f"TARGET = {str(target)!r}\n{write}", tmp_path)
    assert not run.passed
    assert target.read_text() == "keep me" and not target.is_symlink()


def test_secrets_of_the_host_cannot_be_read(tmp_path):
    key = tmp_path / "home" / "keys" / "watermark.key"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"top secret key bytes")
    run = attack(f"print(open({str(key)!r}, 'rb').read())", tmp_path)
    assert not run.passed and "top secret" not in run.output
    marker = Path.home() / f".genlab-secret-{uuid.uuid4().hex}"  # the user's home: not in the sandbox
    marker.write_text("home secret")
    try:
        home = attack(f"print(open({str(marker)!r}).read())", tmp_path)
    finally:
        marker.unlink()
    assert not home.passed and "home secret" not in home.output


def test_no_network_even_to_loopback(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    run = attack(f"socket.create_connection(('127.0.0.1', {port}), timeout=3)", tmp_path)
    thread.join()
    listener.close()
    assert not run.passed and accepted == []


def _running(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_a_daemonised_child_dies_with_the_run_and_the_deadline_holds(tmp_path):
    token = f"genlab-escape-{uuid.uuid4().hex}"
    started = time.monotonic()
    run = attack(
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['/bin/sleep', '60', '{token}'])\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n",
        tmp_path,
        seconds=3,
    )
    elapsed = time.monotonic() - started
    assert run.timed_out and elapsed < 15, elapsed
    time.sleep(0.5)
    assert _running(token) == []


def test_a_fork_bomb_is_capped_and_ends_at_the_deadline(tmp_path):
    token = f"genlab-bomb-{uuid.uuid4().hex}"
    started = time.monotonic()
    run = attack(
        "spawned = 0\n"
        "for _ in range(10_000):\n"
        "    try:\n"
        f"        if os.fork() == 0:\n            os.execv('/bin/sleep', ['/bin/sleep', '60', '{token}'])\n"
        "        spawned += 1\n"
        "    except OSError:\n"
        "        break\n"
        "raise AssertionError(f'spawned {spawned} processes')\n",  # pytest prints the message
        tmp_path,
        seconds=20,  # a backstop: the cap ends the loop (pytest starts slowly on a busy machine)
        processes=16,
    )
    assert time.monotonic() - started < 60
    spawned = re.search(r"AssertionError: spawned (\d+) processes", run.output)
    assert spawned is not None and int(spawned.group(1)) < 16, run.output
    time.sleep(0.5)
    assert _running(token) == []


def test_a_flood_of_output_is_cut_not_buffered(tmp_path):
    run = attack("for _ in range(200_000):\n    print('x' * 100)", tmp_path, seconds=20)
    assert len(run.output) <= 4000


def test_without_bubblewrap_untrusted_code_is_refused(tmp_path, monkeypatch):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sandbox.bubblewrap_problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
            attack("open('/tmp/x', 'w')", tmp_path)
        assert not (tmp_path / "home" / "scratch").exists() or not any(
            (tmp_path / "home" / "scratch").iterdir()
        )
    finally:
        monkeypatch.undo()
        sandbox.bubblewrap_problem.cache_clear()


# Issue 29: one limit for the whole sandbox, no nested namespaces or netlink, results read safely.


@pytest.fixture(params=["cgroup", "rlimits-and-watch"])
def containment(request, monkeypatch):
    """Each memory attack meets both ways of holding the whole sandbox: the kernel's cgroup (where
    one can be made here) and, without one, the tmpfs sizes, RLIMIT_AS and the host's watch."""
    if request.param == "cgroup":
        cgroup = sandbox.Cgroup(Limits())
        cgroup.close()
        if "memory" not in cgroup.controllers:
            pytest.skip("no memory cgroup can be made here (the other containment runs instead)")
    else:
        monkeypatch.setattr(sandbox.Cgroup, "WANTED", ())
    return request.param


def in_thread(call, seconds: float):
    """``call()``'s value, or a failure if it has not returned within ``seconds`` (it blocked)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the host blocked"
    return box[0]


@pytest.mark.parametrize("where", ["/tmp", "."])  # "." is /sandbox, the scratch folder
def test_the_tmpfs_holds_many_files_to_the_memory_limit(tmp_path, containment, where):
    # 1.2 GB to /tmp, 800 MB to the scratch folder, in files each under the 16 MB file limit
    total_mb = 1200 if where == "/tmp" else 800
    run = attack(
        f"for i in range({total_mb // 15}):\n"
        f"    with open(os.path.join({where!r}, f'fill{{i}}'), 'wb') as f:\n"
        "        for _ in range(15):\n"
        "            f.write(b'x' * 2**20)\n",
        tmp_path,
        memory_mb=256,
    )
    assert not run.passed, run.output
    assert list((tmp_path / "home" / "scratch").iterdir()) == []  # nothing of it reached the disk


CHILD = "import sys, time; held = b'x' * (150 * 2**20); sys.stdout.write('held\\n'); sys.stdout.flush(); time.sleep(30)"


@pytest.mark.parametrize("children", [1, 4])
def test_children_together_cannot_hold_more_than_the_limit(tmp_path, containment, children):
    # Each child alone is within the limit (the control: one passes); four together hold 600 MB.
    token = f"genlab-held-{uuid.uuid4().hex}"
    run = attack(
        f"procs = [subprocess.Popen([sys.executable, '-c', {CHILD!r}, {token!r}], stdout=subprocess.PIPE)\n"
        f"         for _ in range({children})]\n"
        f"assert [p.stdout.readline() for p in procs] == [b'held\\n'] * {children}\n"
        "for p in procs:\n"
        "    p.kill()\n",
        tmp_path,
        memory_mb=256,
    )
    assert run.passed == (children == 1), run.output
    assert ("over its 256 MB of memory" in run.output) == (children == 4)
    time.sleep(0.5)
    assert _running(token) == []


@pytest.mark.parametrize(
    "escape",
    [
        "subprocess.run(['unshare', '--user', 'true'], check=True)",
        "subprocess.run(['unshare', '--user', '--map-root-user', '--net', 'true'], check=True)",
        "import ctypes; assert ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0, ctypes.get_errno()",
        "subprocess.run(['unshare', '--net', 'true'], check=True)",
    ],
)
def test_no_nested_namespaces(tmp_path, escape):
    run = attack(escape, tmp_path)
    assert run.built and not run.passed, run.output


@pytest.mark.parametrize(
    "socket_call",
    [
        "s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); s.bind((0, 0))",  # NETLINK_ROUTE
        "socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)",  # NETLINK_KOBJECT_UEVENT
        "socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        # io_uring opens sockets without socket(2); an x32 call has its own number
        "import ctypes; assert ctypes.CDLL(None).syscall(425, 8, ctypes.create_string_buffer(120)) >= 0",
        "import ctypes; assert ctypes.CDLL(None).syscall(0x40000000 | 41, 16, 3, 0) >= 0",
    ],
)
def test_no_netlink_nor_a_way_around_the_socket_filter(tmp_path, socket_call):
    run = attack(socket_call, tmp_path)
    assert run.built and not run.passed, run.output


def test_ordinary_sockets_still_work_inside(tmp_path):
    run = attack("a, b = socket.socketpair(); a.send(b'x'); assert b.recv(1) == b'x'", tmp_path)
    assert run.passed, run.output


@pytest.mark.parametrize("plant", ["os.mkfifo('_result.json')", "os.symlink('/dev/zero', '_result.json')"])
def test_the_sandbox_cannot_swap_its_result_for_a_fifo_or_a_link(tmp_path, plant):
    # Then end before the driver writes: the host finds what was planted (a FIFO blocked it 45 s,
    # /dev/zero read until MemoryError).
    run = in_thread(lambda: attack(f"os.unlink('_result.json')\n{plant}\nos._exit(0)", tmp_path), 90)
    assert not run.passed and not run.timed_out


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "link to a host file", "4 GB sparse file"])
def test_the_host_reads_a_result_only_from_a_small_regular_file(tmp_path, kind):
    path = tmp_path / "_result.json"
    honest = '{"exit_code": 0, "statements": [1], "missing": []}'
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "link to a host file":
        (tmp_path / "elsewhere.json").write_text(honest)
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        with path.open("wb") as f:
            f.write(honest.encode())
            f.truncate(4 * 2**30)
    run = in_thread(lambda: sandbox._result(path, "out"), 10)
    assert run.exit_code == -1 and not run.passed


@pytest.mark.parametrize(
    "name", ["../escape.py", "/tmp/abs.py", "sub/dir.py", "_driver.py", "_result.json", "x.txt"]
)
def test_file_names_are_module_names_only(tmp_path, name):
    with pytest.raises(InvalidRequestError, match="Python module names"):
        run_tests("m", MODULE, {name: "def test_x():\n    pass\n"}, settings=Settings(home=tmp_path / "home"))
    assert not (tmp_path / "escape.py").exists() and not Path("/tmp/abs.py").exists()
