"""Clients people already have, against a live genlab server on loopback: the official `ollama`
client and the `mcp` package's client, check by check (pass/fail), and rerank's latency per
document and its top-1 accuracy on a small built-in set (the bi-encoder: see docs/serving.md).

Each check is what the client's own documentation shows for a local server (list, chat whole and
streamed, generate, embed, show, ps; MCP's tools/list and tools/call). Prints a table and writes
bench/results/clients.json.

    python bench/clients.py [--model gemma-3-270m] [--documents 10 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

import anyio
import httpx
import ollama
import uvicorn
from mcp import Client
from rich.console import Console
from rich.table import Table

from genlab.registry import Registry
from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store

RESULTS = Path(__file__).parent / "results" / "clients.json"
#: (query, the relevant document, distractors): top-1 is right when the relevant one ranks first
RANKING = [
    (
        "How do I reset my password?",
        "Click 'Forgot password' on the login page to get a reset link.",
        ["Our office opens at nine.", "The invoice is attached.", "Pasta needs salted water."],
    ),
    (
        "best way to cook pasta",
        "Boil pasta in plenty of salted water and stir it now and then.",
        ["Reset your password from the login page.", "The train leaves at noon.", "Cats sleep a lot."],
    ),
    (
        "when does the train leave",
        "The next train departs from platform 2 at 12:05.",
        ["Salt the pasta water.", "Your parcel has shipped.", "The museum is closed on Mondays."],
    ),
    (
        "symptoms of a cold",
        "A cold brings a runny nose, a sore throat and sneezing.",
        ["The stock market fell today.", "Water the plants weekly.", "The train is late."],
    ),
    (
        "how to water houseplants",
        "Most houseplants want water when the top inch of soil is dry.",
        ["A cold causes sneezing.", "The meeting moved to Friday.", "Boil the pasta."],
    ),
    (
        "is the museum open on Monday",
        "The museum is closed on Mondays and open Tuesday to Sunday.",
        ["Houseplants need light.", "Your password was changed.", "The train left."],
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(registry: Registry, folder: Path) -> tuple[str, uvicorn.Server]:
    store = Store(f"sqlite:///{folder / 'clients.db'}")
    app = create_app(registry, store, ServerConfig(open_access=True))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def check(results: list[dict], client: str, feature: str, fn) -> None:
    started = time.perf_counter()
    try:
        ok, note = bool(fn()), ""
    except Exception as e:  # a check that raises fails, with its message
        ok, note = False, f"{type(e).__name__}: {e}"[:120]
    results.append(
        {
            "client": client,
            "feature": feature,
            "pass": ok,
            "seconds": time.perf_counter() - started,
            "note": note,
        }
    )


def ollama_checks(url: str, model: str, results: list[dict]) -> None:
    c, opts = ollama.Client(host=url), {"num_predict": 16, "temperature": 0, "seed": 1}
    hi = [{"role": "user", "content": "Say hello."}]
    check(results, "ollama", "list", lambda: any(m.model == f"{model}:latest" for m in c.list().models))
    check(results, "ollama", "chat", lambda: c.chat(model=model, messages=hi, options=opts).done)
    check(
        results,
        "ollama",
        "chat stream",
        lambda: list(c.chat(model=model, messages=hi, options=opts, stream=True))[-1].done,
    )
    check(
        results, "ollama", "generate", lambda: c.generate(model=model, prompt="The sky is", options=opts).done
    )
    check(
        results,
        "ollama",
        "generate raw stream",
        lambda: list(c.generate(model=model, prompt="Once", raw=True, options=opts, stream=True))[-1].done,
    )
    check(
        results,
        "ollama",
        "embed",
        lambda: len(c.embed(model="all-minilm-l6-v2", input=["a", "b"]).embeddings) == 2,
    )
    check(results, "ollama", "show", lambda: "completion" in c.show(model).capabilities)
    check(results, "ollama", "ps", lambda: bool(c.ps().models))
    check(
        results,
        "ollama",
        "format json",
        lambda: (
            json.loads(
                c.chat(
                    model=model, messages=hi, format="json", options={**opts, "num_predict": 48}
                ).message.content
            )
            is not None
        ),
    )


def mcp_checks(url: str, results: list[dict]) -> None:
    async def listed():
        async with Client(f"{url}/mcp") as client:
            return len((await client.list_tools()).tools) == 6

    async def called():
        async with Client(f"{url}/mcp") as client:
            return not (await client.call_tool("embed", {"texts": ["a cat"]})).is_error

    check(results, "mcp (streamable HTTP)", "tools/list", lambda: anyio.run(listed))
    check(results, "mcp (streamable HTTP)", "tools/call embed", lambda: anyio.run(called))


def rerank_figures(url: str, sizes: list[int]) -> dict:
    latency = {}
    for n in sizes:
        documents = [f"Document {i}: a sentence about topic {i % 17} and its details." for i in range(n)]
        body = {"query": "details of topic 3", "documents": documents, "top_n": 3}
        httpx.post(f"{url}/v1/rerank", json=body, timeout=300)  # warm
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            httpx.post(f"{url}/v1/rerank", json=body, timeout=300).raise_for_status()
            runs.append((time.perf_counter() - started) / n * 1000)
        latency[n] = statistics.median(runs)
    right = 0
    for query, relevant, others in RANKING:
        out = httpx.post(
            f"{url}/v1/rerank", json={"query": query, "documents": [*others, relevant]}, timeout=60
        ).json()
        right += out["results"][0]["index"] == len(others)
    return {"ms_per_document": latency, "top1": right / len(RANKING), "queries": len(RANKING)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--documents", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        url, server = serve(Registry(), Path(folder))
        results: list[dict] = []
        ollama_checks(url, args.model, results)
        mcp_checks(url, results)
        rerank = rerank_figures(url, args.documents)
        server.should_exit = True
    table = Table(title="clients against genlab")
    for column in ("client", "feature", "pass", "s", "note"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r["client"], r["feature"], "pass" if r["pass"] else "FAIL", f"{r['seconds']:.2f}", r["note"]
        )
    console = Console()
    console.print(table)
    console.print(
        "rerank (bi-encoder all-minilm-l6-v2): "
        + ", ".join(f"{n} documents {ms:.2f} ms/document" for n, ms in rerank["ms_per_document"].items())
        + f"; top-1 {rerank['top1']:.2f} on {rerank['queries']} queries"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "model": args.model,
                "checks": results,
                "rerank": rerank,
            },
            indent=2,
        )
        + "\n"
    )
    if not all(r["pass"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
