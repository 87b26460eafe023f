import httpx

EMBEDDED = "gemma-3-270m"


def test_keys_are_required_when_they_exist(keyed_server):
    url = f"{keyed_server.url}/v1/models"
    r = httpx.get(url)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(url, headers={"Authorization": "Bearer gl-wrong"})
    assert r.status_code == 401
    r = httpx.get(url, headers={"Authorization": f"Bearer {keyed_server.key}"})
    assert r.status_code == 200


def test_rate_limit_per_key(keyed_server):
    headers = {"Authorization": f"Bearer {keyed_server.key}"}
    codes = [httpx.get(f"{keyed_server.url}/v1/models", headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = httpx.get(f"{keyed_server.url}/v1/models", headers=headers)
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1


def test_health_and_pages_need_no_key(keyed_server):
    assert httpx.get(f"{keyed_server.url}/health").status_code == 200
    assert "Playground" in httpx.get(f"{keyed_server.url}/").text
