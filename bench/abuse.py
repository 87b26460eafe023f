"""Abuse against a live `genlab serve` on loopback, bounded in count and time, while a prober asks
`/health` every 50 ms and a sampler reads the server's memory every 100 ms. Goal: `/health` keeps
answering (p99 < 1 s) throughout, the server never crashes, its RSS (with its worker processes)
never exceeds twice its idle size, and every abusive request ends in a 4xx or at its deadline.

The abuse, all at once:
- 1,000 slow clients that send half a request and hold the connection;
- 8 chunked 10 MB bodies to `/v1/moderations` (the limit is 1 MB);
- 4 prompts of 1 MB of "Mr. Xxxx" names to `/v1/moderations` (the scan is linear);
- 8 fork-bomb test submissions to the code-completion recipe (an admin key: code roles allow it),
  each capped by the sandbox (processes, deadline);
- 2 upload bombs: a FLAC of two hours of silence (a few hundred kB; gigabytes decoded);
- 4 chats with 64 tools x 220 patterned properties (900 kB of JSON Schema to compile);
- 4 chats with a model whose chat template loops on the word "boom";
- 4 embedding requests of 20,000 inputs;
- 2 image requests (n=16, steps=1000) whose clients leave after a second: the steps the server
  ran for them are read from its metrics.

    python bench/abuse.py [--slow 1000]

Writes bench/results/abuse.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
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


def timed(name: str, outcomes: list, send) -> None:
    """Send one abusive request; note its status (or the client-side error) and its seconds."""
    started = time.perf_counter()
    try:
        outcomes.append((name, send().status_code, time.perf_counter() - started))
    except httpx.HTTPError as e:
        outcomes.append((name, type(e).__name__, time.perf_counter() - started))


def upload_bomb(url: str, headers: dict, outcomes: list) -> None:
    from tests.security.test_admission import two_hours_of_silence

    files = {"file": ("silence.flac", two_hours_of_silence(), "audio/flac")}
    send = partial(httpx.post, f"{url}/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
    timed("FLAC of 2 h of silence", outcomes, partial(send, headers=headers, timeout=300))


def many_tools(url: str, headers: dict, outcomes: list) -> None:
    from tests.security.test_admission import many_tools as tools

    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "tools": tools()}
    send = partial(httpx.post, f"{url}/v1/chat/completions", json=body, headers=headers, timeout=300)
    timed("64 tools x 220 properties", outcomes, send)


def looping_template(url: str, headers: dict, outcomes: list) -> None:
    body = {"model": "loops-on-boom", "messages": [{"role": "user", "content": "boom"}], "max_tokens": 4}
    send = partial(httpx.post, f"{url}/v1/chat/completions", json=body, headers=headers, timeout=300)
    timed("chat template that loops", outcomes, send)


def many_inputs(url: str, headers: dict, outcomes: list) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello there"] * 20_000}
    send = partial(httpx.post, f"{url}/v1/embeddings", json=body, headers=headers, timeout=300)
    timed("20,000 embedding inputs", outcomes, send)


def left_image(url: str, headers: dict, outcomes: list) -> None:
    body = {"model": "diffusion-digits", "prompt": "7", "n": 16, "steps": 1000, "sampler": "ddpm"}
    timeout = httpx.Timeout(1.0, connect=10.0)  # the client leaves after a second
    send = partial(httpx.post, f"{url}/v1/images/generations", json=body, headers=headers, timeout=timeout)
    timed("image n=16 steps=1000, client leaves", outcomes, send)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (the scan workers, the sandboxes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * 4096
        except (OSError, IndexError, ValueError):
            continue
    return total


def sample_rss(pid: int, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        samples.append(tree_rss(pid))
        time.sleep(0.1)


def steps_run(url: str, headers: dict, model: str) -> float:
    """The server's count of work steps checked for ``model`` (genlab_work_steps_total)."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=30).text
    prefix = f'genlab_work_steps_total{{model="{model}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def prepare(home: Path) -> None:
    """A model whose chat template loops on "boom" (it passes the probes models are added with)."""
    from tests.security.test_admission import LOOPS_ON_BOOM

    from genlab.core.settings import Settings
    from genlab.registry import Registry

    registry = Registry(Settings(home=home))
    gguf = registry.load("gemma-3-270m").model_path
    registry.add_gguf("loops-on-boom", gguf, chat_template=LOOPS_ON_BOOM)


def warm(url: str, headers: dict) -> None:
    """Load the models the abuse uses, so that idle RSS counts them."""
    image = {"model": "diffusion-digits", "prompt": "7", "n": 1, "steps": 2}
    httpx.post(f"{url}/v1/images/generations", json=image, headers=headers, timeout=300)
    embed = {"model": "text-embedding-3-small", "input": ["hello"]}
    httpx.post(f"{url}/v1/embeddings", json=embed, headers=headers, timeout=300)
    httpx.post(f"{url}/v1/moderations", json={"input": "hello"}, headers=headers, timeout=300)
    chat = {
        "model": "loops-on-boom",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 16,
        "max_tokens": 32768,
    }
    httpx.post(
        f"{url}/v1/chat/completions", json=chat, headers=headers, timeout=300
    )  # 400: loads, no decoding


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


ABUSE = {  # each abuse and how many at once
    "chunked": (chunked, 8),
    "pii": (pii, 4),
    "fork-bomb": (fork_bomb, 8),
    "upload-bomb": (upload_bomb, 2),
    "many-tools": (many_tools, 4),
    "looping-template": (looping_template, 4),
    "many-inputs": (many_inputs, 4),
    "left-image": (left_image, 2),
}


def run_abuse(url: str, headers: dict, port: int, args: argparse.Namespace, pid: int) -> dict:
    """Every abuse at once, while /health is probed and the server's memory sampled."""
    latencies, failures, outcomes, opened, rss = [], [], [], [], []
    stop, hold = threading.Event(), threading.Event()
    watchers = [
        threading.Thread(target=probe, args=(url, stop, latencies, failures)),
        threading.Thread(target=sample_rss, args=(pid, stop, rss)),
    ]
    for w in watchers:
        w.start()
    time.sleep(1)
    started = time.perf_counter()
    slow = threading.Thread(target=slow_clients, args=(port, args.slow, hold, opened))
    slow.start()
    chosen = [ABUSE[name] for name in args.only or ABUSE]
    workers = [threading.Thread(target=f, args=(url, headers, outcomes)) for f, n in chosen for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    abuse_seconds = time.perf_counter() - started
    hold.set()
    slow.join()
    time.sleep(5)  # the image requests' clients left: their work must have stopped by now
    stop.set()
    for w in watchers:
        w.join()
    return {
        "latencies": latencies,
        "failures": failures,
        "outcomes": outcomes,
        "opened": opened,
        "rss": rss,
        "abuse_seconds": abuse_seconds,
    }


def main() -> None:
    from tests.conftest import free_port, start_serve

    from genlab.core.settings import Settings
    from genlab.storage import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=list(ABUSE), help="run these abuses only (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        store = Store(settings=Settings(home=Path(home)))
        key, _ = store.create_key("bench", "admin", rate_limit_per_minute=10**6)
        store.close()
        prepare(Path(home))
        port = free_port()
        server = start_serve(Path(home), port)
        url, headers = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {key}"}
        try:
            warm(url, headers)
            time.sleep(2)
            idle = tree_rss(server.pid)
            steps_before = steps_run(url, headers, "diffusion-digits")
            run = run_abuse(url, headers, port, args, server.pid)
            image_steps = steps_run(url, headers, "diffusion-digits") - steps_before
            alive = server.poll() is None
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # still busy with abuse its clients gave up on
                server.kill()
                server.wait(timeout=30)
    write_report(run, idle, image_steps, alive, args.only or list(ABUSE))


def write_report(run: dict, idle: int, image_steps: float, alive: bool, abuses: list[str]) -> None:
    lat, rss = np.array(run["latencies"]), max(run["rss"])
    report = {
        "machine": platform.processor() or platform.machine(),
        "abuses": abuses,
        "slow_clients_opened": sum(s is not None for s in run["opened"]),
        "abuse_seconds": round(run["abuse_seconds"], 1),
        "health_probes": len(lat),
        "health_failures": len(run["failures"]),
        "health_p50_s": round(float(np.percentile(lat, 50)), 4),
        "health_p99_s": round(float(np.percentile(lat, 99)), 4),
        "health_max_s": round(float(lat.max()), 4),
        "server_alive": alive,
        "rss_idle_mb": round(idle / 2**20),
        "rss_max_mb": round(rss / 2**20),
        "rss_max_over_idle": round(rss / idle, 2),
        "image_steps_run_of_2000": int(image_steps),
        "outcomes": [{"abuse": a, "status": s, "seconds": round(t, 2)} for a, s, t in run["outcomes"]],
        "goal": {
            "health_p99_s": "< 1",
            "crashes": 0,
            "rss_max_over_idle": "< 2",
            "abusive requests": "4xx or their deadline",
        },
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
        f"server alive: {alive}; RSS idle {report['rss_idle_mb']} MB, max {report['rss_max_mb']} MB "
        f"({report['rss_max_over_idle']}x); image steps run after the clients left: "
        f"{report['image_steps_run_of_2000']} of 2,000"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
