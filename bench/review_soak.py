"""Crash soak: kill -9 `genlab serve` while reviewers decide, restart it, check nothing acknowledged was lost.

Per round: 300 held items, 6 reviewers deciding over HTTP (approve, reject or escalate), SIGKILL
once at least 40 decisions were acknowledged, restart on the same database, then check that every
decision acknowledged with a 200 is in the database, every decided item has exactly one final
decision, no item is in an impossible state, and the audit chain verifies. Run on SQLite and on a
throwaway PostgreSQL (Debian's binaries), several rounds each, the same database across rounds.

    python bench/review_soak.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "review_soak.json"
sys.path.insert(0, str(ROOT))


def round_(home: Path, url: str, keys: list[str]) -> dict:
    from tests.conftest import free_port, start_serve

    from genlab.core.settings import Settings
    from genlab.safety.review import FINAL, ReviewQueue
    from genlab.storage import Store

    store = Store(url, settings=Settings(home=home))  # the server's audit key lives in its home
    ids = [ReviewQueue(store).submit(endpoint="chat.completions", model="soak", modality="text", request={"prompt": f"q{i}"},
                                artifact={"text": f"a{i}"}, findings=[], rule="always")["id"] for i in range(300)]  # fmt: skip
    store.close()
    port = free_port()
    server = start_serve(home, port, GENLAB_DATABASE_URL=url)
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()

    def reviewer(i: int) -> None:
        verdict = ("approve", "reject", "escalate")[i % 3]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {keys[i]}"}
        ) as c:
            for item_id in ids[i % 3 :: 3] if i >= 2 else ids[i::2]:
                try:
                    r = c.post(f"/v1/reviews/{item_id}/decision", timeout=5,
                               json={"verdict": verdict, "reason_code": "ok" if verdict == "approve" else "low_quality"})  # fmt: skip
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acknowledged[item_id] = r.json()["state"]

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    for t in threads:
        t.join()
    restarted = start_serve(home, port, GENLAB_DATABASE_URL=url)
    try:
        store = Store(url, settings=Settings(home=home))
        queue = ReviewQueue(store)
        lost = sum(
            1 for item_id, state in acknowledged.items()
            if not ((s := queue.get(item_id)["state"]) == state or (state == "escalated" and s in FINAL))
        )  # fmt: skip
        impossible = 0
        for item_id in ids:
            item = queue.get(item_id)
            finals = [d for d in item["decisions"] if d["verdict"] in FINAL]
            impossible += len(finals) != (1 if item["state"] in FINAL else 0)
        report = queue.verify()
        store.close()
    finally:
        restarted.kill()
        restarted.wait()
    return {"acknowledged": len(acknowledged), "lost": lost, "impossible_states": impossible,
            "audit_ok": report.ok, "audit_events": report.events}  # fmt: skip


def soak(url: str, rounds: int) -> list[dict]:
    from genlab.core.settings import Settings
    from genlab.storage import Store

    with tempfile.TemporaryDirectory() as home:
        store = Store(url, settings=Settings(home=Path(home)))
        keys = [
            store.create_key(f"soak{i}-{time.time_ns()}", "reviewer", rate_limit_per_minute=10**6)[0]
            for i in range(6)
        ]
        store.close()
        return [round_(Path(home), url, keys) for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    from tests.pg import temporary_postgres

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = soak(f"sqlite:///{tmp}/soak.db", args.rounds)
    with temporary_postgres() as url:
        results["postgresql"] = soak(url, args.rounds)
    for db, rounds in results.items():
        for i, r in enumerate(rounds):
            console.print(f"{db} round {i + 1}: {r}")
    ok = all(
        r["lost"] == 0 and r["impossible_states"] == 0 and r["audit_ok"]
        for rs in results.values()
        for r in rs
    )
    console.print(
        "[green]no acknowledged decision lost, no impossible state, audit chain intact[/]"
        if ok
        else "[red]FAILED[/]"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"platform": platform.platform()}, "args": vars(args), "ok": ok,
                                   "results": results}, indent=2) + "\n")  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
