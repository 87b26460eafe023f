"""Speech in and out over real HTTP with the `openai` client: the shipped voice speaks free text in
OpenAI's formats (watermarked, with provenance), the shipped transcriber hears it back."""

import base64
import io
import json

import httpx
import numpy as np
import openai
import pytest
import soundfile

from genlab.safety.watermark import detect_audio


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-on-an-open-server", max_retries=0)


@pytest.fixture(scope="module")
def spoken(client) -> bytes:
    return client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="Your order has shipped. It arrives on Friday.",
        response_format="wav",
    ).read()


def test_the_voice_speaks_free_text_watermarked(spoken):
    samples, rate = soundfile.read(io.BytesIO(spoken), dtype="float32")
    assert rate == 22050 and 1.5 < samples.size / rate < 8  # two sentences of speech
    assert np.abs(samples).max() > 0.05  # not silence
    assert detect_audio(samples, rate).present  # the invisible mark, as on every genlab clip


@pytest.mark.parametrize("fmt", ["flac", "mp3", "opus", "pcm"])
def test_openai_response_formats(client, fmt):
    data = client.audio.speech.create(
        model="tts-1-hd", voice="nova", input="Good morning.", response_format=fmt
    ).read()
    if fmt == "pcm":
        assert len(data) % 2 == 0 and len(data) > 22050  # raw 16-bit samples, more than half a second
    else:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
        assert samples.size / rate > 0.4


def test_speed_changes_the_pace_and_family_models_refuse_it(server):
    def seconds(speed: float) -> float:
        body = {
            "model": "piper-joe",
            "input": "We found three mistakes in the report.",
            "speed": speed,
            "response_format": "wav",
        }
        samples, rate = soundfile.read(
            io.BytesIO(httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=60).content)
        )
        return samples.size / rate

    assert seconds(2.0) < 0.75 * seconds(1.0)
    r = httpx.post(
        f"{server.url}/v1/audio/speech", json={"model": "vae-spoken-digits", "input": "seven", "speed": 2.0}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "speed"


def test_the_transcriber_hears_the_voice_in_every_format(client, spoken, server):
    text = client.audio.transcriptions.create(model="whisper-1", file=("order.wav", spoken)).text
    assert "order" in text.lower() and "friday" in text.lower()
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("o.wav", spoken), response_format="verbose_json"
    )
    assert verbose.segments and verbose.segments[0].start == 0.0 and verbose.duration > 1.5
    srt = client.audio.transcriptions.create(model="whisper-1", file=("o.wav", spoken), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
    vtt = client.audio.transcriptions.create(model="whisper-1", file=("o.wav", spoken), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 -->")
    flac = io.BytesIO()
    samples, rate = soundfile.read(io.BytesIO(spoken), dtype="float32")
    soundfile.write(flac, samples, rate, format="FLAC")
    assert (
        "order"
        in client.audio.transcriptions.create(
            model="whisper-tiny-en", file=("o.flac", flac.getvalue())
        ).text.lower()
    )


def test_speech_mistakes_are_4xx(server, spoken):
    post = lambda path, **kw: httpx.post(f"{server.url}/v1/audio/{path}", timeout=60, **kw)  # noqa: E731
    r = post("translations", data={"model": "whisper-1"}, files={"file": ("o.wav", spoken)})
    assert r.status_code == 400 and "English-only" in r.json()["error"]["message"]
    r = post("transcriptions", data={"model": "whisper-1"}, files={"file": ("x.wav", b"not audio at all")})
    assert r.status_code == 400 and "not a readable audio file" in r.json()["error"]["message"]
    assert "BytesIO" not in r.json()["error"]["message"]
    r = post(
        "transcriptions",
        data={"model": "whisper-1", "response_format": "docx"},
        files={"file": ("o.wav", spoken)},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = post("transcriptions", data={"model": "gemma-3-270m"}, files={"file": ("o.wav", spoken)})
    assert r.status_code == 400 and "transcripts of speech" in r.json()["error"]["message"]
    r = post("transcriptions", data={"model": "nope"}, files={"file": ("o.wav", spoken)})
    assert r.status_code == 404
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "whisper-1", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400


STORY = "Your order has shipped. It left our store this morning. It arrives on Friday, before noon."


def test_speech_streams_as_it_is_synthesised_and_the_joined_clip_carries_one_mark(server):
    body = {"model": "tts-1", "input": STORY, "response_format": "pcm", "stream_format": "audio"}
    with httpx.stream("POST", f"{server.url}/v1/audio/speech", json=body, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("audio/pcm")
        record_id, rate = r.headers["x-genlab-id"], int(r.headers["x-genlab-sample-rate"])
        parts = r.iter_bytes()
        first = next(parts)
        # the first sentence arrived while the rest is still being made: nothing is recorded yet
        assert httpx.get(f"{server.url}/v1/genlab/generations/{record_id}").status_code == 404
        data = first + b"".join(parts)
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32767
    assert 3.0 < samples.size / rate < 15  # three sentences
    assert detect_audio(samples, rate).present  # chunks marked one by one read as one mark
    stored = httpx.get(f"{server.url}/v1/genlab/generations/{record_id}/content")
    kept, kept_rate = soundfile.read(io.BytesIO(stored.content), dtype="float32")
    assert kept_rate == rate and np.allclose(kept, samples, atol=2 / 32767)  # the record is what was sent
    assert httpx.get(f"{server.url}/v1/genlab/generations/{record_id}").json()["status"] == "ok"


def test_speech_streams_a_wav_and_openai_sse_events(server):
    body = {"model": "piper-joe", "input": STORY, "response_format": "wav", "stream_format": "audio"}
    data = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=120).content
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")  # a header with an open length
    assert rate == 22050 and samples.size / rate > 3.0
    body = {**body, "response_format": "pcm", "stream_format": "sse"}
    r = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=120)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(x[6:]) for x in r.text.split("\n\n") if x.startswith("data: {")]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2 and events[-1]["type"] == "speech.audio.done"  # a chunk per sentence or two
    pcm = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert detect_audio(np.frombuffer(pcm, "<i2").astype(np.float32) / 32767, 22050).present
    assert events[-1]["genlab"]["id"] == r.headers["x-genlab-id"]


def test_streamed_speech_mistakes_are_4xx(server, reviewed):
    post = lambda body, **kw: httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=60, **kw)  # noqa: E731
    r = post({"model": "tts-1", "input": "Hello there.", "response_format": "mp3", "stream_format": "audio"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = post(
        {"model": "vae-spoken-digits", "input": "seven", "stream_format": "audio", "response_format": "pcm"}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_format"
    r = post({"model": "tts-1", "input": "Hi.", "response_format": "pcm", "stream_format": "video"})
    assert r.status_code == 400
    # a prompt the review rule would hold cannot stream: a streamed second cannot be taken back
    r = httpx.post(
        f"{reviewed.url}/v1/audio/speech",
        json={
            "model": "tts-1",
            "input": "Call Ann at ann@example.com.",
            "stream_format": "audio",
            "response_format": "pcm",
        },
        headers={"Authorization": f"Bearer {reviewed.keys['user']}"},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "review_required"
