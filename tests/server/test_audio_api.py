"""OpenAI's speech API (POST /v1/audio/speech) over the shipped audio model."""

from __future__ import annotations

import io

import httpx
import numpy as np
import openai
import pytest
import soundfile

from genlab.core import load_artifact

AUDIO_MODEL = "vae-spoken-digits"


def test_openai_client_speaks_a_digit(server, tmp_path):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    r = client.audio.speech.create(
        model=AUDIO_MODEL, input="say seven", voice="alloy", response_format="wav", extra_body={"seed": 11}
    )
    wav = r.content
    wave, rate = soundfile.read(io.BytesIO(wav))
    assert rate == 16000 and wave.shape == (16000,) and np.abs(wave).max() > 0.5
    path = tmp_path / "seven.wav"
    path.write_bytes(wav)
    artifact = load_artifact(path)  # the provenance travels inside the WAV
    assert artifact.provenance.model == AUDIO_MODEL and artifact.provenance.seed == 11
    assert artifact.provenance.parameters["class"] == "7"
    again = httpx.post(
        f"{server.url}/v1/audio/speech",
        timeout=60,
        json={"model": AUDIO_MODEL, "input": "7", "seed": 11, "response_format": "wav"},
    )
    assert np.array_equal(soundfile.read(io.BytesIO(again.content))[0], wave)  # the same seed, the same clip
    record_id = again.headers["x-genlab-id"]
    stored = httpx.get(f"{server.url}/v1/genlab/generations/{record_id}/content", timeout=30)
    assert stored.headers["content-type"] == "audio/wav" and stored.content == again.content


def test_a_named_voice_is_a_fixed_seed(server):
    def say(voice):
        r = httpx.post(
            f"{server.url}/v1/audio/speech",
            json={"model": AUDIO_MODEL, "input": "3", "voice": voice},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return soundfile.read(io.BytesIO(r.content))[0], r.headers["x-genlab-seed"]

    (a, seed_a), (b, seed_b), (c, seed_c) = say("alloy"), say("alloy"), say("echo")
    assert np.array_equal(a, b) and seed_a == seed_b and seed_c != seed_a and not np.array_equal(c, a)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "vae-digits", "input": "seven"}, "not audio"),
        ({"model": AUDIO_MODEL, "input": "eleven"}, "no class 'eleven'"),
        ({"model": AUDIO_MODEL, "input": "7", "response_format": "aac"}, "response_format"),
        ({"model": AUDIO_MODEL, "input": "7", "steps": 10}, "apply to diffusion"),
        ({"model": AUDIO_MODEL, "input": "7", "iterations": 0}, "iterations"),
        ({"model": AUDIO_MODEL, "input": ""}, "input"),
    ],
)
def test_speech_client_mistakes_are_4xx_with_openai_bodies(server, body, needle):
    r = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert needle.lower() in error["message"].lower() and error["type"]
