"""The Store against both databases genlab supports: SQLite (WAL) and a real PostgreSQL."""

import threading

import pytest
from sqlalchemy import inspect, text

from genlab.core import InvalidRequestError
from genlab.storage import Store
from genlab.storage.db import StorageError
from tests.pg import empty_tables


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'genlab.db'}")
    else:
        s = Store(request.getfixturevalue("postgres_url"))
        empty_tables(s)  # each test starts from empty tables
    yield s
    s.close()


def test_migrations_create_the_tables(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"api_keys", "generations", "alembic_version"} <= tables
    Store(store.url).close()  # migrating again is a no-op


def test_sqlite_runs_in_wal_mode(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_keys_are_stored_hashed_and_verified(store):
    key, info = store.create_key("ci", "reviewer", rate_limit_per_minute=5)
    assert key.startswith("gl-") and info.role == "reviewer" and info.prefix == key[:10]
    with store.engine.connect() as c:
        stored = c.execute(text("SELECT key_hash FROM api_keys")).scalar()
    assert key not in stored and len(stored) == 64
    assert store.verify_key(key).id == info.id
    assert store.verify_key(key + "x") is None
    assert store.has_active_keys()
    store.revoke_key(info.id)
    assert store.verify_key(key) is None and not store.has_active_keys()


def test_bad_key_requests(store):
    with pytest.raises(InvalidRequestError, match="unknown role 'root'"):
        store.create_key("x", "root")
    with pytest.raises(InvalidRequestError, match="no API key with id 999"):
        store.revoke_key(999)


def test_generation_records_roundtrip_and_order(store):
    _, info = store.create_key("k", "user")
    first = store.record_generation(
        key_id=info.id,
        endpoint="completions",
        model="m",
        request={"prompt": "a"},
        output_text="b",
        prompt_tokens=1,
        completion_tokens=2,
        latency_ms=3.5,
    )
    second = store.record_generation(
        endpoint="chat.completions", model="m", request={"messages": []}, output_text="c"
    )
    rec = store.get_generation(first)
    assert rec["request"] == {"prompt": "a"} and rec["usage"] == {"prompt_tokens": 1, "completion_tokens": 2}
    assert rec["key_id"] == info.id and rec["latency_ms"] == 3.5
    assert [r["id"] for r in store.list_generations()] == [second, first]
    assert store.get_generation("gen-missing") is None


def test_concurrent_writers_lose_nothing(store):
    def write(i: int) -> None:
        for j in range(10):
            store.record_generation(endpoint="completions", model="m", request={"i": i, "j": j})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_generations(limit=100)) == 40


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StorageError, match="cannot open the database"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
