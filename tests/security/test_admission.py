"""Admission before expense, attacked over real HTTP: requests whose size makes the work expensive
are refused from their own numbers before any of it is done (an upload bomb, a flood of items, a
huge tool schema); what is admitted renders and compiles off the event loop within a time budget
(a looping chat template); and every kind of work stops when its client leaves."""

from __future__ import annotations

import io
import threading
import time

import httpx
import numpy as np
import pytest

from genlab.core import InvalidRequestError
from genlab.core.chat import CHAT_TEMPLATES, RENDER_SECONDS

EMBEDDED = "gemma-3-270m"
LOOP = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
# passes the probes a model is added with, loops once a message says "boom": only the render-time
# budget can stop it
LOOPS_ON_BOOM = "{% if 'boom' in messages[-1]['content'] %}" + LOOP + "{% endif %}" + CHAT_TEMPLATES["chatml"]


class HealthProbe:
    """Asks /health every 50 ms in a thread while an attack runs: when each answer was asked and
    came (perf_counter seconds), so a test can see whether the server answered while it worked."""

    def __init__(self, url: str) -> None:
        self.url, self.answers, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            asked = time.perf_counter()
            if httpx.get(f"{self.url}/health", timeout=60).status_code == 200:
                self.answers.append((asked, time.perf_counter()))
            time.sleep(0.05)

    def during(self, started: float, ended: float) -> int:
        """/health answers asked and given while [started, ended] (a request) was in flight."""
        return sum(started <= asked and answered <= ended for asked, answered in self.answers)

    def longest_wait(self) -> float:
        return max(answered - asked for asked, answered in self.answers)

    def __enter__(self) -> HealthProbe:
        self.thread.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def two_hours_of_silence() -> bytes:
    """A FLAC of two hours of silence at 48 kHz (a few hundred kB; 1.4 GB as float32 samples)."""
    import soundfile

    buffer = io.BytesIO()
    block = np.zeros(48_000 * 60, dtype=np.int16)  # a minute at a time: the test holds little
    with soundfile.SoundFile(buffer, "w", 48_000, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(120):
            f.write(block)
    return buffer.getvalue()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_a_flac_bomb_is_refused_from_its_header_before_it_is_decoded(server):
    bomb = two_hours_of_silence()
    assert len(bomb) < 2_000_000
    before = rss_bytes()
    r = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": ("silence.flac", bomb, "audio/flac")},
        data={"model": "whisper-tiny-en"},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"
    assert "7200 s" in r.json()["error"]["message"]
    assert rss_bytes() - before < 200 * 2**20  # decoded, it would be 1.4 GB and more
    assert server.state.pipeline.queues.active("whisper-tiny-en") == 0


def test_a_header_that_lies_about_the_length_is_cut_where_the_cap_is():
    from genlab.codecs.audio import read_audio

    with pytest.raises(InvalidRequestError, match="longer than 60 s"):
        read_audio(two_hours_of_silence(), 16_000, max_seconds=60)


def test_twenty_thousand_embedding_inputs_are_refused_before_any_scan(server):
    body = {"model": "all-minilm-l6-v2", "input": ["hello there"] * 20_000}
    steps = server.state.metrics.steps.labels("all-minilm-l6-v2")._value.get()
    r = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"
    assert r.json()["error"]["param"] == "input" and "20000 inputs" in r.json()["error"]["message"]
    assert server.state.metrics.steps.labels("all-minilm-l6-v2")._value.get() == steps  # nothing scanned


def test_item_floods_in_responses_and_moderations_are_refused_before_any_scan(server):
    items = [{"role": "user", "content": "hi"}] * 30_000
    r = httpx.post(f"{server.url}/v1/responses", json={"model": EMBEDDED, "input": items}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(f"{server.url}/v1/moderations", json={"input": ["hello"] * 2_000}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"


def many_tools(count: int = 64, properties: int = 220) -> list[dict]:
    """The issue's 894 kB of tools: 64 functions of 220 properties, each with a pattern."""
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{t}",
                "parameters": {
                    "type": "object",
                    "properties": {
                        f"f{p}": {"type": "string", "pattern": f"^[a-z]{{{p % 7 + 1}}}[0-9]+$"}
                        for p in range(properties)
                    },
                    "required": [f"f{p}" for p in range(properties)],
                },
            },
        }
        for t in range(count)
    ]


def test_a_huge_tool_schema_is_refused_and_health_answers_throughout(server):
    body = {"model": EMBEDDED, "messages": [{"role": "user", "content": "hi"}], "tools": many_tools()}
    with HealthProbe(server.url) as probe:
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
        time.sleep(0.3)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"
    assert r.json()["error"]["param"] == "tools"  # refused from its size: nothing was compiled
    assert probe.answers and server.state.pipeline.queues.active(EMBEDDED) == 0


def test_tools_under_the_cap_compile_off_the_event_loop(server):
    """Sixteen tools of 30 patterned properties (under the cap; a second or so to compile): the
    template is rendered and the grammar compiled in a worker thread, so /health answers while
    they are. (The request then asks for more tokens than a request may: a 400 after the
    compiling, with no decoding.)"""
    body = {
        "model": EMBEDDED,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": many_tools(16, 30),
        "n": 16,
        "max_tokens": 32768,
    }
    with HealthProbe(server.url) as probe:
        started = time.perf_counter()
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        ended = time.perf_counter()
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    assert probe.during(started, ended) >= 1  # the server answered while it compiled


@pytest.fixture(scope="module")
def looping_gguf(registry, trained_bpe, tmp_path_factory):
    from genlab.training.gguf_export import export_gguf

    folder = tmp_path_factory.mktemp("templates")
    return {
        "loops": export_gguf(registry, trained_bpe, folder / "loops.gguf", chat_template=LOOP),
        "boom": export_gguf(registry, trained_bpe, folder / "boom.gguf", chat_template=LOOPS_ON_BOOM),
    }


def test_a_gguf_whose_own_template_loops_is_refused_when_it_is_added(registry, looping_gguf):
    started = time.perf_counter()
    with pytest.raises(InvalidRequestError, match="GGUF's own chat template ran past its budget"):
        registry.add_gguf("loops-forever", looping_gguf["loops"])
    assert time.perf_counter() - started < 60  # the budget, not the 10^10 iterations
    assert "loops-forever" not in registry.names()


def test_a_template_that_loops_on_one_message_is_stopped_and_health_answers(server, registry, looping_gguf):
    registry.add_gguf("loops-on-boom", looping_gguf["boom"])  # its probes pass
    body = {"model": "loops-on-boom", "messages": [{"role": "user", "content": "boom"}], "max_tokens": 4}
    with HealthProbe(server.url) as probe:
        started = time.perf_counter()
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        ended = time.perf_counter()
    assert r.status_code == 400 and "ran past its budget" in r.json()["error"]["message"]
    # on the event loop, the render would have held every /health for its whole budget
    assert probe.during(started, ended) >= 1 and probe.longest_wait() < RENDER_SECONDS


def test_an_image_request_whose_client_leaves_stops_at_its_next_step(server):
    """n=16 and steps=1000 is 1,000 denoising steps of a batch of 16; the client leaves after a
    second. The work must end within a few steps of that, not run the other ~99%."""
    server.state.registry.load("diffusion-digits")  # loaded before the client's second starts
    steps = server.state.metrics.steps.labels("diffusion-digits")
    queues = server.state.pipeline.queues
    before = steps._value.get()
    body = {"model": "diffusion-digits", "prompt": "7", "n": 16, "steps": 1000, "sampler": "ddpm"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/images/generations", json=body, timeout=httpx.Timeout(1.0, connect=5.0))
    deadline = time.monotonic() + 120
    while queues.active("diffusion-digits") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queues.active("diffusion-digits") == 0
    ran = steps._value.get() - before
    time.sleep(1.0)
    assert steps._value.get() - before == ran  # stopped: no step after the slot was freed
    assert 0 < ran < 500  # of 1,000


@pytest.fixture(scope="module")
def hurried(registry, gemma, tmp_path_factory):
    """A server whose requests may work for half a second."""
    from genlab.server.app import ServerConfig, create_app
    from genlab.storage import Store

    from ..server.conftest import LiveServer

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hurried-admission') / 'genlab.db'}")
    with LiveServer(create_app(registry, store, ServerConfig(open_access=True, request_seconds=0.5))) as live:
        yield live


STORY = (
    "The lighthouse keeper climbed the stairs each evening and lit the lamp. Ships passed in the "
    "night, and none of them knew his name. One winter a storm broke the glass, and he mended it. "
)


def spoken(registry, repeats: int) -> bytes:
    """A minute or so of speech (the shipped voice reading a story): something Whisper works on."""
    import soundfile

    clip = registry.load("piper-joe").generate(STORY)[0]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(clip.samples, repeats), clip.sample_rate, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "kind",
    ["images", "embeddings", "moderations", "speech", "transcriptions"],
)
def test_every_kind_of_work_ends_at_the_deadline(hurried, registry, kind):
    """Not only streamed text: each of these takes seconds on any CPU, and the server allows 0.5 s."""
    url = hurried.url
    if kind == "images":
        body = {"model": "diffusion-digits", "prompt": "7", "n": 16, "steps": 1000, "sampler": "ddpm"}
        r = httpx.post(f"{url}/v1/images/generations", json=body, timeout=120)
    elif kind == "embeddings":
        text = "The quick brown fox jumps over the lazy dog near the river bank. " * 5
        r = httpx.post(
            f"{url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [text] * 2048}, timeout=120
        )
    elif kind == "moderations":
        text = "Please write to Mr. Smith about the meeting on Tuesday. " * 250
        r = httpx.post(f"{url}/v1/moderations", json={"input": [text] * 64}, timeout=120)
    elif kind == "speech":
        body = {"model": "piper-joe", "input": STORY * 20, "response_format": "wav"}
        r = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=120)
    else:
        r = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("story.wav", spoken(registry, 6), "audio/wav")},
            data={"model": "whisper-tiny-en"},
            timeout=120,
        )
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded", r.text[:300]
    models = ("diffusion-digits", "all-minilm-l6-v2", "piper-joe", "whisper-tiny-en")
    assert all(hurried.state.pipeline.queues.active(m) == 0 for m in models)


def test_the_deadline_is_a_setting_read_once_and_passed_to_workers():
    from genlab.core.settings import Settings
    from genlab.server.state import ServerConfig

    settings = Settings.from_env({"GENLAB_HOME": "/tmp/genlab-unused", "GENLAB_REQUEST_SECONDS": "12"})
    assert Settings.from_env(settings.to_env()).request_seconds == 12  # what `serve --workers` hands on
    assert ServerConfig.from_settings(settings).request_seconds == 12.0
    with pytest.raises(InvalidRequestError, match="GENLAB_REQUEST_SECONDS"):
        Settings.from_env({"GENLAB_REQUEST_SECONDS": "soon"})
