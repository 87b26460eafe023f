"""Held generations over real HTTP: 202 + review id, nothing released before approval, reviewer-only routes,
webhooks, and the audit chain."""

from __future__ import annotations

import base64
import http.server
import json
import threading

import httpx


def call(server, method: str, path: str, who: str = "user", **kw) -> httpx.Response:
    headers = {"authorization": f"Bearer {server.keys[who]}", **kw.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)


def chat(server, content: str = "Say hello.", **kw) -> httpx.Response:
    body = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 8,
        "seed": 1,
    }
    return call(server, "POST", "/v1/chat/completions", json=body, **kw)


def decide(server, held: dict, **decision) -> httpx.Response:
    """A reviewer's decision on a held item."""
    return call(server, "POST", f"{held['url']}/decision", who="reviewer", json=decision)


def test_a_held_chat_is_released_only_after_approval(reviewed):
    r = chat(reviewed)
    assert r.status_code == 202, r.text
    held = r.json()
    assert held["object"] == "review" and held["status"] == "pending" and held["rule"] == "always"
    assert r.headers["location"] == f"/v1/reviews/{held['id']}"
    mine = call(reviewed, "GET", held["url"]).json()
    assert mine["status"] == "pending" and "response" not in mine and "artifact" not in mine
    queue = call(reviewed, "GET", "/v1/reviews?state=pending", who="reviewer").json()
    item = next(i for i in queue["data"] if i["id"] == held["id"])
    generation_id = item["artifact"]["response"]["genlab"]["generation_ids"][0]
    hidden = call(reviewed, "GET", f"/v1/genlab/generations/{generation_id}")
    assert hidden.status_code == 403 and hidden.json()["error"]["code"] == "held_for_review"
    # a user cannot decide; a reviewer can, once
    refused = call(
        reviewed, "POST", f"{held['url']}/decision", json={"verdict": "approve", "reason_code": "ok"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "reviewer_role_required"
    ok = decide(reviewed, held, verdict="approve", reason_code="ok", seconds_spent=2.5)
    assert ok.status_code == 200 and ok.json()["state"] == "approved"
    again = call(
        reviewed,
        "POST",
        f"{held['url']}/decision",
        who="other",
        json={"verdict": "reject", "reason_code": "low_quality"},
    )
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict_error"
    released = call(reviewed, "GET", held["url"]).json()
    assert released["status"] == "approved" and released["reason_code"] == "ok"
    assert released["response"]["object"] == "chat.completion"
    assert released["response"]["choices"][0]["message"]["content"] == item["artifact"]["text"]


def test_an_edit_is_what_the_client_gets(reviewed):
    held = chat(reviewed, "Name a colour.").json()
    claimed = call(reviewed, "POST", f"{held['url']}/claim", who="reviewer")
    assert claimed.status_code == 200 and claimed.json()["claimed_by"].startswith("ana")
    busy = call(
        reviewed,
        "POST",
        f"{held['url']}/decision",
        who="other",
        json={"verdict": "approve", "reason_code": "ok"},
    )
    assert busy.status_code == 409 and "being reviewed by ana" in busy.json()["error"]["message"]
    wrong = decide(reviewed, held, verdict="edit", reason_code="minor_fix", edited={"b64_png": "AAAA"})
    assert wrong.status_code == 400 and "this item is text" in wrong.json()["error"]["message"]
    unknown = decide(reviewed, held, verdict="approve", reason_code="meh")
    assert unknown.status_code == 400 and "unknown reason code" in unknown.json()["error"]["message"]
    edited = decide(reviewed, held, verdict="edit", reason_code="minor_fix", edited={"text": "Blue."})
    assert edited.json()["state"] == "edited"
    out = call(reviewed, "GET", held["url"]).json()
    assert out["status"] == "edited" and out["response"]["choices"][0]["message"]["content"] == "Blue."


def test_rejected_items_release_nothing_and_notify_the_webhook(reviewed):
    got: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            """Keep the test output quiet (the default logs every request to stderr)."""

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        held = chat(
            reviewed, headers={"x-genlab-review-webhook": f"http://127.0.0.1:{hook.server_port}/done"}
        ).json()
        decide(reviewed, held, verdict="reject", reason_code="low_quality", comment="garbled")
        for _ in range(100):
            if got:
                break
            threading.Event().wait(0.05)
    finally:
        hook.shutdown()
    assert got and got[0]["id"] == held["id"] and got[0]["status"] == "rejected" and "response" not in got[0]
    mine = call(reviewed, "GET", held["url"]).json()
    assert mine["status"] == "rejected" and mine["comment"] == "garbled" and "response" not in mine


def test_flagged_input_is_held_and_unflagged_is_not(reviewed):
    body = {"model": "gemma-3-270m", "prompt": "Hello", "max_tokens": 4, "seed": 2}
    assert call(reviewed, "POST", "/v1/completions", json=body).status_code == 200
    flagged = call(
        reviewed, "POST", "/v1/completions", json={**body, "prompt": "Email jane.doe@example.com now"}
    )
    assert flagged.status_code == 202 and flagged.json()["rule"] == "flagged by pii"
    item = call(reviewed, "GET", flagged.json()["url"], who="reviewer").json()
    assert any(f["scanner"] == "pii" and f["category"] == "EMAIL_ADDRESS" for f in item["findings"])


def test_streams_are_refused_where_everything_is_held(reviewed):
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = call(reviewed, "POST", "/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "review_required"


def test_held_images_come_back_inline_once_approved(reviewed):
    r = call(
        reviewed,
        "POST",
        "/v1/images/generations",
        json={"model": "vae-digits", "prompt": "3", "n": 2, "response_format": "url", "seed": 0},
    )
    assert r.status_code == 202
    url = r.json()["url"]
    png = call(reviewed, "GET", f"{url}/content", who="reviewer")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert call(reviewed, "GET", f"{url}/content").status_code == 403  # not for the requester
    call(
        reviewed, "POST", f"{url}/decision", who="reviewer", json={"verdict": "approve", "reason_code": "ok"}
    )
    data = call(reviewed, "GET", url).json()["response"]["data"]
    assert len(data) == 2 and base64.b64decode(data[0]["b64_json"])[:4] == b"\x89PNG"


def test_audit_chain_verifies_over_http(reviewed):
    assert call(reviewed, "GET", "/v1/genlab/audit/verify").status_code == 403
    report = call(reviewed, "GET", "/v1/genlab/audit/verify", who="reviewer").json()
    assert report["ok"] and report["events"] > 0
