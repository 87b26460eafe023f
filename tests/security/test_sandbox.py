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
        seconds=4,
        processes=16,
    )
    assert time.monotonic() - started < 20
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
