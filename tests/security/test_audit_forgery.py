"""Whoever can write the database rewrites history and recomputes the audit chain: without the
key kept outside the database, `genlab audit verify` still finds the forgery."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from genlab.core.settings import Settings
from genlab.safety.review import ReviewQueue, canonical
from genlab.storage import Store

from ..conftest import genlab_cli

FIELDS = ("seq", "created_at", "actor", "action", "item_id", "from_state", "to_state", "payload_hash")


def test_a_recomputed_chain_is_still_a_forgery(tmp_path):
    home = tmp_path / "home"
    store = Store(settings=Settings(home=home))
    queue = ReviewQueue(store)
    for i in range(3):
        item = queue.submit(
            endpoint="chat.completions",
            model="m",
            modality="text",
            request={"prompt": f"q{i}"},
            artifact={"text": f"a{i}"},
            findings=[],
            rule="always",
        )
        queue.decide(item["id"], "alice", "reject", "low_quality")
    store.close()
    assert genlab_cli("audit", "verify", home=home).returncode == 0

    with sqlite3.connect(home / "genlab.db") as db:  # mallory approves what alice rejected ...
        db.execute("UPDATE audit_events SET actor = 'mallory', to_state = 'approved' WHERE seq = 3")
        rows = db.execute(f"SELECT {', '.join(FIELDS)}, prev_hash FROM audit_events ORDER BY seq").fetchall()
        prev = "0" * 64
        for row in rows:  # ... and recomputes every hash after it, the way an unkeyed chain is made
            event = dict(zip(FIELDS, row[:-1], strict=True))
            digest = hashlib.sha256(prev.encode() + canonical(event)).hexdigest()
            db.execute(
                "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, event["seq"])
            )
            prev = digest
        db.execute("UPDATE audit_head SET last_hash = ?", (prev,))
    out = genlab_cli("audit", "verify", "--json", home=home)
    assert out.returncode == 1
    assert not json.loads(out.stdout)["ok"]
