"""Abuse against a live `genlab serve` on loopback, bounded in count and time, while a prober asks
`/health` every 50 ms. Goal: `/health` keeps answering (p99 < 1 s) throughout, the server never
crashes, and every abusive request ends in a 4xx or at its deadline.

The abuse, all at once:
- 1,000 slow clients that send half a request and hold the connection;
- 8 chunked 10 MB bodies to `/v1/moderations` (the limit is 1 MB);
- 4 prompts of 1 MB of "Mr. Xxxx" names to `/v1/moderations` (the scan is linear);
- 8 fork-bomb test submissions to the code-completion recipe (an admin key: code roles allow it),
  each capped by the sandbox (processes, deadline).

    python bench/abuse.py [--slow 1000]

Writes bench/results/abuse.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
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
RESULTS = ROOT / "bench" / "results" / "abuse.json"
sys.path.insert(0, str(ROOT))

FORK_BOMB = (
    "import os\n\ndef test_bomb():\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            pass\n"
)


def slow_clients(port: int, n: int, hold: threading.Event, opened: list) -> None:
    """Half-sent requests: headers that promise a body that never comes."""
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000\r\n\r\n{"model": '
            )
            opened.append(s)
        except OSError:
            opened.append(None)
    hold.wait()
    for s in opened:
        if s is not None:
            s.close()


def chunked(url: str, headers: dict, outcomes: list) -> None:
    def body():
        for _ in range(160):  # 10 MB in 64 kB pieces
            yield b"x" * 65536

    started = time.perf_counter()
    try:
        r = httpx.post(f"{url}/v1/moderations", content=body(), headers=headers, timeout=120)
        outcomes.append(("chunked 10 MB body", r.status_code, time.perf_counter() - started))
    except httpx.HTTPError as e:  # the server may close the connection after its 413
        outcomes.append(("chunked 10 MB body", type(e).__name__, time.perf_counter() - started))


def pii(url: str, headers: dict, outcomes: list) -> None:
    names = " ".join(f"Mr. {chr(65 + i % 26)}{chr(97 + i // 26 % 26)}son met him." for i in range(60_000))[
        :990_000
    ]
    started = time.perf_counter()
    r = httpx.post(f"{url}/v1/moderations", json={"input": names}, headers=headers, timeout=300)
    outcomes.append(("1 MB PII prompt", r.status_code, time.perf_counter() - started))


def fork_bomb(url: str, headers: dict, outcomes: list) -> None:
    body = {"model": "shakespeare-char", "input": {"code": "def add(a, b):\n", "tests": FORK_BOMB}}
    started = time.perf_counter()
    r = httpx.post(f"{url}/v1/apps/code-completion", json=body, headers=headers, timeout=300)
    outcomes.append(("fork-bomb tests", r.status_code, time.perf_counter() - started))


def probe(url: str, stop: threading.Event, latencies: list, failures: list) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            ok = httpx.get(f"{url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - started)
        if not ok:
            failures.append(time.perf_counter())
        time.sleep(0.05)


def main() -> None:
    from tests.conftest import free_port, start_serve

    from genlab.core.settings import Settings
    from genlab.storage import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        store = Store(settings=Settings(home=Path(home)))
        key, _ = store.create_key("bench", "admin", rate_limit_per_minute=10**6)
        store.close()
        port = free_port()
        server = start_serve(Path(home), port)
        url, headers = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {key}"}
        try:
            latencies, failures, outcomes, opened = [], [], [], []
            stop, hold = threading.Event(), threading.Event()
            prober = threading.Thread(target=probe, args=(url, stop, latencies, failures))
            prober.start()
            time.sleep(1)
            started = time.perf_counter()
            slow = threading.Thread(target=slow_clients, args=(port, args.slow, hold, opened))
            slow.start()
            workers = [threading.Thread(target=chunked, args=(url, headers, outcomes)) for _ in range(8)]
            workers += [threading.Thread(target=pii, args=(url, headers, outcomes)) for _ in range(4)]
            workers += [threading.Thread(target=fork_bomb, args=(url, headers, outcomes)) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            abuse_seconds = time.perf_counter() - started
            hold.set()
            slow.join()
            time.sleep(1)
            stop.set()
            prober.join()
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat = np.array(latencies)
    report = {
        "machine": platform.processor() or platform.machine(),
        "slow_clients_opened": sum(s is not None for s in opened),
        "abuse_seconds": round(abuse_seconds, 1),
        "health_probes": len(lat),
        "health_failures": len(failures),
        "health_p50_s": round(float(np.percentile(lat, 50)), 4),
        "health_p99_s": round(float(np.percentile(lat, 99)), 4),
        "health_max_s": round(float(lat.max()), 4),
        "server_alive": alive,
        "outcomes": [{"abuse": a, "status": s, "seconds": round(t, 2)} for a, s, t in outcomes],
        "goal": {"health_p99_s": "< 1", "crashes": 0, "abusive requests": "4xx or their deadline"},
    }
    table = Table("abuse", "answers", "slowest s")
    for name in sorted({o["abuse"] for o in report["outcomes"]}):
        rows = [o for o in report["outcomes"] if o["abuse"] == name]
        statuses = [str(o["status"]) for o in rows]
        answers = ", ".join(f"{s} x{statuses.count(s)}" for s in sorted(set(statuses)))
        table.add_row(name, answers, f"{max(o['seconds'] for o in rows):.1f}")
    table.add_row(f"{report['slow_clients_opened']} half-sent requests", "held open", "")
    console = Console()
    console.print(table)
    console.print(
        f"/health: {report['health_probes']} probes, {report['health_failures']} failed, p50 "
        f"{report['health_p50_s']} s, p99 {report['health_p99_s']} s, max {report['health_max_s']} s; "
        f"server alive: {alive}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
