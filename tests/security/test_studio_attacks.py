"""Attacks on the studio in a real browser (Playwright on Debian's chromium): a class name that is
HTML (from a dataset folder's name), framing by another page, and the key's storage."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from genlab.core.settings import Settings
from genlab.evaluation.classifier import fid_scorer
from genlab.registry import Registry
from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store
from genlab.training.image import train_image_model

from ..server.conftest import LiveServer
from ..server.test_studio_browser import CHROMIUM, FLAGS

EVIL = 'q" onload="window.__xss=1'  # breaks out of an attribute where it is not escaped


@pytest.fixture(scope="module")
def evil_server(tmp_path_factory):
    """A server whose one image model learnt a class whose folder name is HTML."""
    root = tmp_path_factory.mktemp("evil")
    rng = np.random.default_rng(0)
    for label in (EVIL, "plain"):
        folder = root / "shapes" / label
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    settings = Settings(home=root / "home")
    train_image_model(
        "vae",
        str(root / "shapes"),
        name="evil-vae",
        preset_name="tiny",
        steps=5,
        settings=settings,
        progress=False,
        gan_scorer=fid_scorer,
    )
    store = Store(f"sqlite:///{root / 'genlab.db'}")
    with LiveServer(create_app(Registry(settings), store, ServerConfig(open_access=True))) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_a_class_name_that_is_html_stays_text(evil_server, browser):
    page = browser.new_page()
    page.goto(evil_server.url + "/studio/images")
    expect(page.locator("#model option[value='evil-vae']")).to_have_count(1, timeout=20_000)
    page.select_option("#model", "evil-vae")
    expect(page.locator("#klass option")).to_have_count(3, timeout=10_000)  # all classes, and the two
    assert EVIL in page.locator("#klass").inner_text()  # shown as the text it is
    page.select_option("#klass", EVIL)
    page.fill("#n", "2")
    page.click("#generate")
    expect(page.locator("#grid img")).to_have_count(2, timeout=30_000)
    assert page.evaluate("window.__xss") is None


def test_pages_cannot_be_framed_and_scripts_need_the_pages_nonce(evil_server, browser):
    import httpx

    r = httpx.get(evil_server.url + "/studio/reviews")
    csp = r.headers["content-security-policy"]
    assert (
        "frame-ancestors 'none'" in csp
        and "script-src 'nonce-" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert r.headers["x-frame-options"] == "DENY"
    api = httpx.get(evil_server.url + "/v1/models")
    assert "default-src 'none'" in api.headers["content-security-policy"]
    page = browser.new_page()
    page.set_content(f'<iframe id="f" src="{evil_server.url}/studio/reviews"></iframe>')
    page.wait_for_timeout(1500)
    frame = page.frame_locator("#f")
    assert frame.locator("header").count() == 0  # the browser refused to render it in a frame


def test_the_key_is_kept_out_of_local_storage(evil_server, browser):
    page = browser.new_page()
    page.goto(evil_server.url + "/studio/models")
    page.fill("#api-key", "gl-example-key")
    page.dispatch_event("#api-key", "change")
    assert page.evaluate("localStorage.getItem('genlab-key')") is None
    assert page.evaluate("sessionStorage.getItem('genlab-key')") == "gl-example-key"
