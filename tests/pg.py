"""A throwaway PostgreSQL server for the tests: Debian's binaries, a private data directory, a free
port on 127.0.0.1. As root (CI) the server runs as the `postgres` user, as PostgreSQL requires."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_postgres():
    url = os.environ.get("GENLAB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (the CI script does)")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="genlab-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, cwd=root)

    run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "genlab", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-w", "-l", os.path.join(root, "log"), "start")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "genlab", "genlab_test")
        yield f"postgresql+psycopg://genlab@127.0.0.1:{port}/genlab_test"
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def empty_tables(store) -> None:
    """Start a test on the session's shared PostgreSQL from empty tables (children before parents:
    decisions and items reference keys), the audit chain at its genesis."""
    from sqlalchemy import text

    with store.engine.begin() as c:
        for table in ("review_decisions", "review_items", "audit_events", "generations", "api_keys"):
            c.execute(text(f"DELETE FROM {table}"))
        c.execute(text("UPDATE audit_head SET last_seq = 0, last_hash = :h WHERE id = 1"), {"h": "0" * 64})
