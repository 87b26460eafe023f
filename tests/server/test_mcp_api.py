"""The server's own /mcp: the MCP tools over streamable HTTP beside the HTTP routes, spoken by the
`mcp` package's client."""

from __future__ import annotations

import json

import anyio

from genlab.mcp import NAMES
from tests.conftest import EMBEDDED

from ..test_mcp import calls_on, text_of


def test_the_servers_mcp_endpoint(server):
    calls = [
        ("embed", {"texts": ["a cat", "a kitten"]}),
        ("generate_text", {"prompt": "Say hi.", "model": EMBEDDED, "max_tokens": 4, "seed": 1}),
        ("moderate", {"text": "hello"}),
    ]
    tools, (embedded, text, moderated) = anyio.run(calls_on, f"{server.url}/mcp", calls)
    assert set(tools) == set(NAMES)
    assert len(json.loads(text_of(embedded))["embeddings"]) == 2
    assert not text.is_error and json.loads(text_of(moderated))["decision"] == "allow"
