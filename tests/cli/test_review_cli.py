"""`genlab review ...` and `genlab audit verify` in real subprocesses, and the kill -9 crash test."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from genlab.core.settings import Settings
from genlab.safety.review import FINAL, ReviewQueue
from genlab.storage import Store

from ..conftest import assert_clean_error, free_port, genlab_cli, start_serve


def seed(home: Path, n: int = 3) -> list[str]:
    store = Store(settings=Settings(home=home))  # the home's database and its audit key, as the CLI uses
    asker = store.create_key("app", "user")[1]  # asked by a key: the terminal reviewer is not its owner
    ids = [
        ReviewQueue(store).submit(
            endpoint="chat.completions",
            model="gemma-3-270m",
            modality="text",
            request={"prompt": f"question {i}"},
            artifact={"text": f"answer {i}"},
            findings=[{"scanner": "pii", "category": "PERSON", "start": 0, "end": 6, "score": 0.7}],
            rule="flagged by pii",
            key_id=asker.id,
        )["id"]
        for i in range(n)
    ]
    store.close()
    return ids


def test_review_commands_decide_export_and_verify(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    a, b, c = seed(home)
    listed = json.loads(genlab_cli("review", "list", "--json", home=home).stdout)
    assert [i["id"] for i in listed] == [a, b, c]
    shown = genlab_cli("review", "show", a, home=home)
    assert shown.returncode == 0 and "answer 0" in shown.stdout and "pii: PERSON" in shown.stdout
    assert (
        genlab_cli("review", "approve", a, "--reason", "false_positive", home=home)
        .stdout.strip()
        .endswith("approved")
    )
    assert_clean_error(genlab_cli("review", "approve", a, home=home), "is already approved")
    assert_clean_error(
        genlab_cli("review", "reject", b, "--reason", "meh", home=home), "unknown reason code 'meh'"
    )
    assert_clean_error(genlab_cli("review", "edit", b, home=home), "--text or as --file")
    assert_clean_error(
        genlab_cli("review", "edit", b, "--file", str(tmp_path / "x.png"), home=home), "no such file"
    )
    out = genlab_cli(
        "review", "edit", b, "--text", "answer [REDACTED]", "--reason", "pii", "--json", home=home
    )
    assert json.loads(out.stdout)["state"] == "edited"
    assert genlab_cli("review", "reject", c, "--reason", "low_quality", home=home).returncode == 0
    lines = [
        json.loads(x)
        for x in genlab_cli("review", "export", "--format", "jsonl", home=home).stdout.splitlines()
    ]
    assert {r["decision"] for r in lines} == {"approved", "edited", "rejected"}
    pair = next(r for r in lines if r["decision"] == "edited")
    assert (
        pair["chosen"] == "answer [REDACTED]"
        and pair["rejected"] == "answer 1"
        and pair["prompt"] == "question 1"
    )
    stats = json.loads(genlab_cli("review", "stats", "--json", home=home).stdout)
    assert stats["scanners"]["pii"] == {"true_positives": 2, "false_positives": 1, "false_negatives": 0}
    ok = genlab_cli("audit", "verify", home=home)
    assert ok.returncode == 0 and "12 events" not in ok.stdout and "hash chain verified" in ok.stdout
    with sqlite3.connect(home / "genlab.db") as db:  # someone rewrites history
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
    bad = genlab_cli("audit", "verify", home=home)
    assert bad.returncode == 1 and "event 4 was edited" in bad.stdout


def test_review_shows_every_output_edits_the_one_named_and_the_local_user_reviews_their_own(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    store = Store(settings=Settings(home=home))
    asker = store.create_key("app", "user")[1]
    three = {"text": "a", "outputs": [{"text": t} for t in ("a", "b", "c")], "count": 3}
    queue = ReviewQueue(store)
    theirs = queue.submit(
        endpoint="completions",
        model="m",
        modality="text",
        request={"prompt": "p"},
        artifact=three,
        findings=[],
        rule="always",
        key_id=asker.id,
    )["id"]
    mine = queue.submit(
        endpoint="cli.generate.text",
        model="m",
        modality="text",
        request={"prompt": "p"},
        artifact={"text": "local"},
        findings=[],
        rule="always",
        actor="cli",
    )["id"]
    store.close()
    shown = genlab_cli("review", "show", theirs, home=home).stdout
    assert all(f"output {i} of 3: {t}" in shown for i, t in enumerate("abc"))
    edited = genlab_cli("review", "edit", theirs, "--text", "B", "--output", "1", "--json", home=home)
    assert json.loads(edited.stdout)["released"] == {"text": "B", "output": 1}
    allowed = genlab_cli("review", "approve", mine, home=home)  # the CLI's own: the person at the machine
    assert allowed.returncode == 0 and allowed.stdout.strip().endswith("approved")


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_decision(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ids = seed(home, 300)
    store = Store(settings=Settings(home=home))
    keys = [store.create_key(f"reviewer{i}", "reviewer")[0] for i in range(6)]
    store.close()
    port = free_port()
    server = start_serve(home, port)
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def reviewer(i: int) -> None:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {keys[i]}"}
        )
        verdict = ("approve", "reject", "escalate")[i % 3]
        for item_id in ids[i::2] if i < 2 else ids[i % 3 :: 3]:
            if stop.is_set():
                return
            try:
                r = client.post(
                    f"/v1/reviews/{item_id}/decision",
                    timeout=5,
                    json={"verdict": verdict, "reason_code": "ok" if verdict == "approve" else "low_quality"},
                )
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 200:
                with lock:
                    acknowledged[item_id] = r.json()["state"]

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.pid, signal.SIGKILL)  # mid-load, no shutdown of any kind
    server.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 40, "the load never got going"

    restarted = start_serve(home, port)  # the server comes back on the same database
    try:
        store = Store(settings=Settings(home=home))
        queue = ReviewQueue(store)
        report = queue.verify()
        assert report.ok, report.problems
        for item_id, state in acknowledged.items():
            item = queue.get(item_id)
            # an acknowledged decision is there; an escalated item may have been decided since, by another reviewer
            assert item["state"] == state or (state == "escalated" and item["state"] in FINAL), (
                item_id,
                state,
                item,
            )
        for item_id in ids:
            item = queue.get(item_id)
            finals = [d for d in item["decisions"] if d["verdict"] in FINAL]
            assert len(finals) == (1 if item["state"] in FINAL else 0), item
            assert item["state"] in ("pending", "in_review", "escalated", *FINAL)
        store.close()
    finally:
        restarted.kill()
        restarted.wait()
