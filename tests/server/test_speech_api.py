"""Speech in and out over real HTTP with the `openai` client: the shipped voice speaks free text in
OpenAI's formats (watermarked, with provenance), the shipped transcriber hears it back."""

import io

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
