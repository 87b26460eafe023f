import json

import httpx

from ..conftest import assert_clean_error, free_port, genlab_cli, start_serve


def test_keys_create_list_revoke(tmp_path):
    home = tmp_path / "home"
    created = json.loads(
        genlab_cli("keys", "create", "--name", "ci", "--role", "reviewer", "--json", home=home).stdout
    )
    assert created["key"].startswith("gl-") and created["role"] == "reviewer"
    listed = json.loads(genlab_cli("keys", "list", "--json", home=home).stdout)
    assert [k["name"] for k in listed] == ["ci"] and "key" not in listed[0]
    assert created["key"] not in genlab_cli("keys", "list", home=home).stdout
    assert genlab_cli("keys", "revoke", str(created["id"]), home=home).returncode == 0
    assert json.loads(genlab_cli("keys", "list", "--json", home=home).stdout)[0]["revoked"] is True
    assert_clean_error(
        genlab_cli("keys", "create", "--name", "x", "--role", "root", home=home), "unknown role 'root'"
    )
    assert_clean_error(genlab_cli("keys", "revoke", "42", home=home), "no api key with id 42")


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    out = genlab_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), home=tmp_path / "home")
    assert_clean_error(out, "refusing to serve on 0.0.0.0 without api keys", "genlab keys create")
    assert_clean_error(genlab_cli("serve", "--port", "70000", home=tmp_path / "home"), "port")


def test_serve_runs_open_on_loopback_and_requires_keys_once_they_exist(tmp_path):
    home, port = tmp_path / "home", free_port()
    proc = start_serve(home, port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in out and "open access" in err
    key = json.loads(genlab_cli("keys", "create", "--name", "k", "--json", home=home).stdout)["key"]
    proc = start_serve(home, port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
