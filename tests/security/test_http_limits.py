"""Attacks on the server's limits over real HTTP: a chunked body past the limit, and a prompt built
to make the PII scanner quadratic."""

from __future__ import annotations

import httpx


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(server):
    sent = {"bytes": 0}

    def body():
        for _ in range(12 * 16):  # 12 MB in 64 kB pieces, no Content-Length
            sent["bytes"] += 65536
            yield b'{"input": "' + b"x" * 65520 + b'"'

    r = httpx.post(
        f"{server.url}/v1/moderations",
        content=body(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200


def test_a_megabyte_of_names_is_scanned_in_linear_time(server):
    """40 kB of "Mr. Xxxx" took 3 s and 80 kB 12 s when the name scan was quadratic (a 1 MB prompt:
    about half an hour of CPU). The client gives up after two minutes; linear time answers in seconds."""
    names = " ".join(
        f"Mr. {chr(65 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676 % 26)}son met him."
        for i in range(40_000)
    )[:900_000]
    r = httpx.post(f"{server.url}/v1/moderations", json={"input": names}, timeout=120)
    assert r.status_code == 200 and r.json()["results"][0]["categories"]["pii"]
