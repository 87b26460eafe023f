"""OpenAI's Videos API: `client.videos.create / retrieve / download_content / list / delete` work
unchanged against genlab's jobs; bad input is a 400 before any job exists; a job left unfinished
by a stopped server is failed when the next one starts."""

from __future__ import annotations

import io
import json
import time

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from genlab.core import load_artifact
from genlab.core.settings import Settings
from genlab.registry import Registry
from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store
from tests.conftest import seed_guard
from tests.server.conftest import LiveServer
from tests.video import TINY, one_thread, train_tiny_video


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("video-home")
    seed_guard(home)
    train_tiny_video(home)
    return home


@pytest.fixture(scope="module")
def live(home):
    registry = Registry(Settings(home=home))
    store = Store(f"sqlite:///{home / 'genlab.db'}")
    with one_thread(), LiveServer(create_app(registry, store, ServerConfig(open_access=True))) as server:
        yield server


def wait_for(client: OpenAI, video_id: str):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.2)
    raise AssertionError(f"{video_id} did not finish")


def test_the_openai_client_creates_polls_and_downloads_a_clip(live, tmp_path):
    client = OpenAI(base_url=f"{live.url}/v1", api_key="sk-local")
    video = client.videos.create(
        model=TINY, prompt="a 7 moving left, fast", extra_body={"steps": 3, "seed": 5}
    )
    assert video.status in ("queued", "in_progress", "completed") and video.object == "video"
    assert video.seconds == "1" and video.size == "32x32"
    done = wait_for(client, video.id)
    assert done.status == "completed" and done.progress == 100 and done.completed_at >= done.created_at

    mp4 = client.videos.download_content(video.id).read()
    assert mp4[4:8] == b"ftyp"
    (tmp_path / "c.mp4").write_bytes(mp4)
    art = load_artifact(tmp_path / "c.mp4")
    assert art.provenance.model == TINY and art.provenance.parameters["class"] == "7 left fast"
    assert art.provenance.seed == 5 and art.frames.shape[0] == 8

    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.size == (32, 32)
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.size[0] > 8 * 32

    assert video.id in [v.id for v in client.videos.list()]
    assert client.videos.delete(video.id).deleted
    with pytest.raises(Exception) as gone:
        client.videos.retrieve(video.id)
    assert getattr(gone.value, "status_code", None) == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "a 7 moving sideways"}, "prompt"),
        ({"prompt": "a 7", "seconds": "4"}, "seconds"),
        ({"prompt": "a 7", "size": "1280x720"}, "size"),
        ({"prompt": "a 7", "steps": 0}, None),
        ({"prompt": "a 7", "model": "no-such-model"}, "model"),
    ],
)
def test_bad_input_is_a_400_and_makes_no_job(live, body, param):
    r = httpx.post(f"{live.url}/v1/videos", json={"model": TINY, **body}, timeout=60)
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert error["message"] and (param is None or error.get("param") in (param, None))
    listed = httpx.get(f"{live.url}/v1/videos", timeout=30).json()["data"]
    assert all(v["prompt"] != body["prompt"] or v["status"] == "completed" for v in listed)


def test_an_unknown_video_is_a_404_with_an_openai_error(live):
    r = httpx.get(f"{live.url}/v1/videos/video_{'0' * 32}", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_job_left_unfinished_by_a_stopped_server_is_failed_at_the_next_start(home):
    jobs = home / "videos"
    jobs.mkdir(exist_ok=True)
    stale = {
        "id": "video_" + "a" * 32,
        "model": TINY,
        "prompt": "a 1",
        "seconds": "1",
        "size": "32x32",
        "key_id": None,
        "status": "in_progress",
        "progress": 40,
    }
    (jobs / f"{stale['id']}.json").write_text(json.dumps(stale))
    registry = Registry(Settings(home=home))
    store = Store(f"sqlite:///{home / 'restart.db'}")
    with LiveServer(create_app(registry, store, ServerConfig(open_access=True))) as server:
        body = httpx.get(f"{server.url}/v1/videos/{stale['id']}", timeout=30).json()
    assert body["status"] == "failed" and body["error"]["code"] == "server_restarted"
    assert json.loads((jobs / f"{stale['id']}.json").read_text())["status"] == "failed"
