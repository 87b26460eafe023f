"""`genlab mcp` over stdio, spoken by the `mcp` package's own client: the tools are listed, each
generator answers through the gate (a guarded prompt is the tool's error, with nothing made),
speech comes back as WAV that the transcriber reads, and every call is recorded as an MCP call."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from genlab.core.settings import Settings
from genlab.mcp import NAMES
from genlab.storage import Store

from .conftest import free_port
from .security.test_input_fields import ATTACKS

pytestmark = pytest.mark.slow


def call_all(
    home: Path, calls: list[tuple[str, dict]], args: tuple[str, ...] = (), env: dict | None = None
) -> tuple[list[str], list]:
    """Start `genlab mcp` (with ``args``) over stdio, list its tools and make ``calls``."""
    params = StdioServerParameters(
        command=str(Path(sys.executable).with_name("genlab")),
        args=["mcp", *args],
        env={**os.environ, "GENLAB_HOME": str(home), **(env or {})},
    )
    return anyio.run(calls_on, params, calls)


async def calls_on(server, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    async with Client(server) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        return tools, [await client.call_tool(name, args, read_timeout_seconds=240) for name, args in calls]


def text_of(result) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


def test_the_generators_as_mcp_tools_over_stdio(session_home, gemma):
    calls = [
        ("generate_text", {"prompt": "Say hello in one word.", "max_tokens": 8, "seed": 1}),
        ("embed", {"texts": ["a cat", "a kitten"]}),
        ("moderate", {"text": ATTACKS["injection"]}),
        ("speak", {"text": "Hello there."}),
        ("generate_image", {"prompt": "7", "model": "gan-digits", "seed": 3}),
        ("generate_text", {"prompt": ATTACKS["harmful"], "max_tokens": 8}),
        ("generate_text", {"prompt": "hi", "model": "no-such-model"}),
    ]
    before = len(Store(settings=Settings(home=session_home)).list_generations(limit=1000))
    tools, (text, embedded, moderated, spoken, image, refused, unknown) = call_all(session_home, calls)
    assert set(tools) == set(NAMES)
    assert not text.is_error and text_of(text).strip()
    vectors = json.loads(text_of(embedded))["embeddings"]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert json.loads(text_of(moderated))["decision"] == "block"
    audio = next(c for c in spoken.content if c.type == "audio")
    assert audio.mime_type == "audio/wav" and base64.b64decode(audio.data)[:4] == b"RIFF"
    drawn = next(c for c in image.content if c.type == "image")
    assert drawn.mime_type == "image/png" and base64.b64decode(drawn.data)[:4] == b"\x89PNG"
    assert refused.is_error and "polic" in text_of(refused).lower()
    assert unknown.is_error and "no-such-model" in text_of(unknown)
    (_, (heard,)) = call_all(session_home, [("transcribe", {"audio_base64": audio.data})])
    assert not heard.is_error and "hello" in text_of(heard).lower()
    records = Store(settings=Settings(home=session_home)).list_generations(limit=1000)
    made = records[: len(records) - before]
    assert sorted(r["endpoint"] for r in made) == [
        "audio",
        "audio.transcriptions",
        "chat.completions",
        "embeddings",
        "images",
    ]
    assert all(r["request"]["api"] == "mcp" for r in made)


def test_streamable_http_on_loopback(session_home):
    """`genlab mcp --transport http`: the same tools at /mcp; a foreign Host (DNS rebinding) is refused."""
    port = free_port()
    script = str(Path(sys.executable).with_name("genlab"))
    env = {**os.environ, "GENLAB_HOME": str(session_home)}
    proc = subprocess.Popen(
        [script, "mcp", "--transport", "http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not port_open(port):
            time.sleep(0.2)
        tools, (embedded,) = anyio.run(calls_on, url, [("embed", {"texts": ["a cat"]})])
        assert set(tools) == set(NAMES) and len(json.loads(text_of(embedded))["embeddings"][0]) == 384
        rebound = httpx.post(url, json={}, headers={"host": "attacker.example"}, timeout=10)
        assert rebound.status_code == 421
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
