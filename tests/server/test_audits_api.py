"""Bias audits recorded in the database and served to the studio."""

import httpx
import pytest

from genlab.evaluation.bias import run_audit


@pytest.mark.slow
def test_audits_are_recorded_and_served(server, registry, tmp_path):
    store = server.state.store
    report = run_audit("vae-digits", samples=4, registry=registry, store=store, write_card=False)
    listed = httpx.get(f"{server.url}/v1/genlab/audits?model=vae-digits", timeout=30).json()["data"]
    assert any(a["id"] == report["id"] for a in listed)
    page = httpx.get(f"{server.url}/v1/genlab/audits/{report['id']}/report.html", timeout=30)
    assert page.status_code == 200 and "Bias audit: vae-digits" in page.text
    png = httpx.get(f"{server.url}/v1/genlab/audits/{report['id']}/classes.png", timeout=30)
    assert png.headers["content-type"] == "image/png"
    sneaky = httpx.get(f"{server.url}/v1/genlab/audits/{report['id']}/..%2Fgenlab.db", timeout=30)
    assert sneaky.status_code == 404
