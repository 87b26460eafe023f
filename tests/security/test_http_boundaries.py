"""Attacks over real HTTP on who may see and do what: another user's records and learners, a
review webhook aimed inside, a foreign web page against an open server, keys made or revoked while
it runs, credentials in a model URL, a course name that is a path, and a user key sending code."""

from __future__ import annotations

import http.server
import threading
from typing import ClassVar

import httpx
import pytest

from ..conftest import assert_clean_error, genlab_cli

CHAR = "shakespeare-char"


def call(live, method: str, path: str, who: str | None = None, **kwargs) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if who is not None:
        headers["authorization"] = f"Bearer {live.keys[who]}"
    return httpx.request(method, f"{live.url}{path}", headers=headers, timeout=60, **kwargs)


def test_one_user_cannot_read_another_users_generation(keyed):
    r = call(
        keyed, "POST", "/v1/completions", "user", json={"model": CHAR, "prompt": "KING:", "max_tokens": 5}
    )
    record_id = r.json()["genlab"]["generation_ids"][0]
    assert call(keyed, "GET", f"/v1/genlab/generations/{record_id}", "user").status_code == 200
    stolen = call(keyed, "GET", f"/v1/genlab/generations/{record_id}", "user2")
    assert stolen.status_code == 404 and "KING" not in stolen.text
    assert call(keyed, "GET", f"/v1/genlab/generations/{record_id}/content", "user2").status_code == 404
    assert call(keyed, "GET", f"/v1/genlab/generations/{record_id}", "reviewer").status_code == 200


def test_one_user_cannot_read_or_answer_another_users_learner(keyed):
    assert (
        call(keyed, "POST", "/v1/apps/tutor/learners", "user", json={"learner": "victim"}).status_code == 201
    )
    for method, path, body in [
        ("GET", "/v1/apps/tutor/learners/victim", None),
        ("POST", "/v1/apps/tutor/learners/victim/next", {}),
        ("POST", "/v1/apps/tutor/learners/victim/answer", {"choice": "A"}),
    ]:
        r = call(keyed, method, path, "user2", json=body)
        assert r.status_code == 404, (path, r.text)
    assert call(keyed, "GET", "/v1/apps/tutor/learners/victim", "user").status_code == 200


def test_a_course_name_is_never_a_path(keyed):
    for course in ("../../../../etc/os-release", "/etc/hosts", "python-basics/../python-basics"):
        r = call(
            keyed, "POST", "/v1/apps/tutor/learners", "user", json={"learner": "path-probe", "course": course}
        )
        assert r.status_code == 400 and "no course named" in r.json()["error"]["message"]


def test_a_user_key_cannot_have_its_own_code_run(keyed):
    body = {"input": {"code": "def add(a, b):\n", "tests": "def test_x():\n    assert True\n"}, "model": CHAR}
    r = call(keyed, "POST", "/v1/apps/code-completion", "user", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "code_execution_not_allowed"
    r = call(
        keyed,
        "POST",
        "/v1/apps/test-generation",
        "user",
        json={"input": {"source": "def f():\n    return 1\n"}},
    )
    assert r.status_code == 403
    streamed = call(keyed, "POST", "/v1/apps/code-completion", "user", json={**body, "stream": True})
    assert streamed.status_code == 403  # refused before the stream's 200, not in-band


def test_the_recipe_declares_that_it_runs_code_and_every_face_enforces_it():
    """Not a table in the server: the recipe says which input runs the caller's code, and
    ``run_recipe`` (the CLI's, the API's, the Python API's path) refuses a caller who may not."""
    from genlab.apps import get_recipe, run_recipe
    from genlab.apps.recipe import CodeNotAllowed
    from genlab.pipeline import Caller

    completion = get_recipe("code-completion")
    with_tests = completion.parse_input(
        {"code": "def add(a, b):\n", "tests": "def test_x():\n    assert 1\n"}
    )
    assert completion.runs_submitted_code(with_tests)
    assert not completion.runs_submitted_code(completion.parse_input({"code": "def add(a, b):\n"}))
    with pytest.raises(CodeNotAllowed):
        run_recipe(completion, with_tests, generator=CHAR, caller=Caller(key_id=7, may_run_code=False))


class _Hook(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self):
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        """Quiet: the test reads ``hits``, not the server's log."""


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/admin",
        "http://localhost:{port}/admin",
        "http://[::1]:{port}/admin",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x",
        "http://[64:ff9b::7f00:1]:{port}/admin",  # NAT64 of 127.0.0.1 (Python 3.11 calls it global)
        "http://[2002:7f00:1::1]:{port}/admin",  # 6to4 of 127.0.0.1
        "http://[::ffff:10.0.0.1]/x",  # IPv4-mapped private
        "http://user:pw@example.com/x",
        "file:///etc/passwd",
    ],
)
def test_a_review_webhook_cannot_reach_inside(keyed, target):
    hook = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = target.format(port=hook.server_port)
        r = call(
            keyed,
            "POST",
            "/v1/completions",
            "user",
            headers={"x-genlab-review-webhook": url},
            json={"model": CHAR, "prompt": "KING:", "max_tokens": 3},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_webhook"
        assert _Hook.hits == []
    finally:
        hook.shutdown()


def test_an_open_server_refuses_foreign_hosts_and_pages(server):
    rebound = httpx.get(f"{server.url}/v1/models", headers={"host": "attacker.example:8000"})
    assert rebound.status_code == 421 and rebound.json()["error"]["code"] == "host_not_allowed"
    for origin in ("https://attacker.example", "null"):
        r = httpx.post(
            f"{server.url}/v1/completions",
            headers={"origin": origin, "content-type": "text/plain"},
            content=b'{"model": "shakespeare-char", "prompt": "x", "max_tokens": 2}',
        )
        assert r.status_code == 403
    assert httpx.get(f"{server.url}/v1/models", headers={"host": "localhost:1"}).status_code == 200
    same = httpx.post(
        f"{server.url}/v1/completions",
        headers={"origin": server.url},
        json={"model": CHAR, "prompt": "x", "max_tokens": 2},
    )
    assert same.status_code == 200


def test_keys_made_or_revoked_while_it_runs_count_at_once(server):
    store = server.state.store
    assert httpx.get(f"{server.url}/v1/models").status_code == 200  # open: no key needed
    key, info = store.create_key("late", "user")
    try:
        import time

        time.sleep(1.2)  # the server re-reads whether keys exist at most once a second
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        assert (
            httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code
            == 200
        )
        store.revoke_key(info.id)
        time.sleep(1.2)
        revoked = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"})
        assert revoked.status_code == 401  # a revoked genlab key never falls back to the local user
        unknown = httpx.get(f"{server.url}/v1/models", headers={"authorization": "Bearer gl-forged-key-0000"})
        assert unknown.status_code == 401
        placeholder = httpx.get(f"{server.url}/v1/models", headers={"authorization": "Bearer sk-anything"})
        assert placeholder.status_code == 200  # OpenAI clients on an open server send some key
    finally:
        store.revoke_key(info.id)


def test_credentials_in_a_model_url_are_refused_and_never_echoed(tmp_path):
    out = genlab_cli(
        "models",
        "add",
        "leaky",
        "--openai-url",
        "http://admin:hunter2@127.0.0.1:9/v1",
        "--remote-model",
        "m",
        home=tmp_path,
    )
    assert_clean_error(out, "credentials", "--api-key-env")
    assert "hunter2" not in out.stderr + out.stdout


def test_embedded_ipv4_addresses_are_judged_by_the_address_they_carry():
    import ipaddress

    from genlab.server.webhooks import _public

    for inside in ("64:ff9b::a00:1", "2002:c0a8:101::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        assert not _public(ipaddress.ip_address(inside)), inside
    for outside in ("64:ff9b::808:808", "2002:808:808::1", "8.8.8.8", "2606:4700::1111"):
        assert _public(ipaddress.ip_address(outside)), outside
