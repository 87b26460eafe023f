"""Review under load: 8 concurrent reviewers deciding 2,000 held items over real HTTP, on SQLite and PostgreSQL.

Each reviewer walks the whole queue in its own random order and tries to decide every item (so
most attempts collide with another reviewer's: the optimistic lock must let exactly one win).
Reported per database: decisions per second, p50/p95 latency of a decision request (won or lost),
and the correctness checks: items decided twice (goal 0), items left undecided (goal 0),
acknowledged decisions missing from the database (goal 0), and the audit chain.

    python bench/review_load.py [--items 2000] [--reviewers 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "review_load.json"
sys.path.insert(0, str(ROOT))  # tests/pg.py: the throwaway PostgreSQL server the tests use


def run(url: str, items: int, reviewers: int) -> dict:
    from sqlalchemy import text
    from tests.server.conftest import LiveServer

    from genlab.core.settings import Settings
    from genlab.registry import Registry
    from genlab.safety.review import ReviewQueue
    from genlab.server.app import ServerConfig, create_app
    from genlab.storage import Store

    store = Store(url)
    with store.engine.begin() as c:  # a clean slate
        for table in ("review_decisions", "review_items", "audit_events", "generations", "api_keys"):
            c.execute(text(f"DELETE FROM {table}"))
        c.execute(text("UPDATE audit_head SET last_seq = 0, last_hash = :h WHERE id = 1"), {"h": "0" * 64})
    ids = [
        ReviewQueue(store).submit(endpoint="chat.completions", model="bench", modality="text", request={"prompt": f"q{i}"},
                             artifact={"text": f"a{i}"}, findings=[], rule="always")["id"]
        for i in range(items)
    ]  # fmt: skip
    keys = [store.create_key(f"r{i}", "reviewer", rate_limit_per_minute=10**9)[0] for i in range(reviewers)]
    with tempfile.TemporaryDirectory() as home:
        registry = Registry(Settings(home=Path(home)))
        app = create_app(registry, store, ServerConfig(open_access=False))
        latencies: list[float] = []
        won: dict[str, list[str]] = {}
        lock = threading.Lock()
        with LiveServer(app) as live:

            def reviewer(i: int) -> None:
                order = ids[:]
                random.Random(i).shuffle(order)
                with httpx.Client(
                    base_url=live.url, headers={"authorization": f"Bearer {keys[i]}"}
                ) as client:
                    for item_id in order:
                        started = time.perf_counter()
                        r = client.post(f"/v1/reviews/{item_id}/decision", timeout=60,
                                        json={"verdict": ("approve", "reject")[i % 2],
                                              "reason_code": ("ok", "low_quality")[i % 2]})  # fmt: skip
                        took = time.perf_counter() - started
                        with lock:
                            latencies.append(took)
                            if r.status_code == 200:
                                won.setdefault(item_id, []).append(f"r{i}")
                            elif r.status_code != 409:
                                raise RuntimeError(f"unexpected {r.status_code}: {r.text}")

            started = time.perf_counter()
            threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(reviewers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
    queue = ReviewQueue(store)
    double = sum(len(v) > 1 for v in won.values())
    undecided = sum(1 for i in ids if i not in won)
    missing = 0
    for item_id, who in won.items():
        item = queue.get(item_id)
        finals = [d for d in item["decisions"] if d["verdict"] in ("approved", "rejected")]
        if len(finals) != 1 or not finals[0]["reviewer"].startswith(who[0] + "#"):
            missing += 1
    report = queue.verify()
    store.close()
    ms = np.array(latencies) * 1000
    return {
        "items": items,
        "reviewers": reviewers,
        "attempts": len(latencies),
        "seconds": round(seconds, 2),
        "decisions_per_second": round(len(won) / seconds, 1),
        "attempts_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "double_decisions": double,
        "undecided": undecided,
        "acknowledged_but_missing": missing,
        "audit_ok": report.ok,
        "audit_events": report.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--reviewers", type=int, default=8)
    args = parser.parse_args()
    console = Console()
    from tests.pg import temporary_postgres

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"[dim]SQLite: {args.reviewers} reviewers x {args.items} items[/]")
        results["sqlite"] = run(f"sqlite:///{tmp}/review.db", args.items, args.reviewers)
    with temporary_postgres() as url:
        console.print(f"[dim]PostgreSQL: {args.reviewers} reviewers x {args.items} items[/]")
        results["postgresql"] = run(url, args.items, args.reviewers)
    table = Table(title=f"{args.reviewers} reviewers deciding {args.items} items over HTTP")
    for col in (
        "database",
        "decisions/s",
        "attempts/s",
        "p50 ms",
        "p95 ms",
        "double",
        "undecided",
        "lost",
        "audit",
    ):
        table.add_column(col, justify="right")
    for db, r in results.items():
        table.add_row(db, str(r["decisions_per_second"]), str(r["attempts_per_second"]), str(r["p50_ms"]),
                      str(r["p95_ms"]), str(r["double_decisions"]), str(r["undecided"]),
                      str(r["acknowledged_but_missing"]), "ok" if r["audit_ok"] else "BROKEN")  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                                   "args": vars(args), "results": results}, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
