"""Durability: what genlab acknowledges or publishes is never half there."""

from __future__ import annotations

import threading

from genlab.core.io import swap_directory
from genlab.storage import Store


def test_a_directory_swap_has_no_moment_without_the_target(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("0")
    missing, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (target / "config.json").exists():
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(1, 300):
            new = tmp_path / f".model.tmp-{i}"
            new.mkdir()
            (new / "config.json").write_text(str(i))
            swap_directory(new, target)
    finally:
        stop.set()
        watcher.join()
    assert missing == [] and (target / "config.json").read_text() == "299"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the old copies are gone


def test_sqlite_acknowledges_only_what_is_on_disk(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'genlab.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()
