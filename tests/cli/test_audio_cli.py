"""`genlab train audio`, `generate audio` and `eval audio`, run as a user runs them (a real subprocess)."""

import json
import shlex

import numpy as np
import pytest
import soundfile

from ..conftest import assert_clean_error, genlab_cli
from ..data.test_audio import write_tone_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audio_cli_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("audio-cli")
    tones = write_tone_folder(tmp_path_factory.mktemp("data") / "tones", rates=(16000, 44100), per_class=8)
    out = genlab_cli(
        *shlex.split("train audio --family vae --data"),
        str(tones),
        *shlex.split("--preset tiny --name hum --json"),
        home=home,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["steps"] == 60
    return home


def test_generate_audio_writes_a_wav_with_provenance(audio_cli_home, tmp_path):
    target = tmp_path / "high.wav"
    out = genlab_cli(
        *shlex.split("generate audio --model hum --prompt"),
        "say high",
        *shlex.split("--seed 3 --out"),
        str(target),
        "--json",
        home=audio_cli_home,
    )
    assert out.returncode == 0, out.stderr
    clip = json.loads(out.stdout)["clips"][0]
    assert clip["label"] == "high" and clip["provenance"]["seed"] == 3
    assert clip["provenance"]["modality"] == "audio" and clip["provenance"]["family"] == "vae"
    wave, rate = soundfile.read(target)
    assert rate == 16000 and wave.shape == (16000,) and 0.8 < np.abs(wave).max() <= 0.91
    check = genlab_cli("verify", str(target), "--json", home=audio_cli_home)
    verdict = json.loads(check.stdout)
    assert verdict["made_by_genlab"] and verdict["content_unchanged"]
    assert verdict["provenance"]["parameters"]["griffin_lim_iterations"] == 32


def test_generate_several_clips_numbers_them(audio_cli_home, tmp_path):
    out = genlab_cli(
        *shlex.split("generate audio --model hum --prompt low -n 3 --seed 0 --iterations 4 --out"),
        str(tmp_path / "low.wav"),
        home=audio_cli_home,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["low-1.wav", "low-2.wav", "low-3.wav"]
    first, second = (soundfile.read(tmp_path / f"low-{i}.wav")[0] for i in (1, 2))
    assert not np.array_equal(first, second)  # seeds 0 and 1 differ


def test_eval_audio_reports_floor_and_round_trip_ceiling(audio_cli_home):
    out = genlab_cli("eval", "audio", "--model", "hum", "--samples", "30", "--json", home=audio_cli_home)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    for key in ("fid", "kid", "precision", "recall", "seconds_per_audio_second", "floor", "ceiling"):
        assert key in m, key
    assert m["feature_space"] == "pixels"  # no classifier trained for this folder yet


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["generate", "audio", "--model", "hum", "--prompt", "purple"],
            ["no class 'purple'", "high, low, mid"],
        ),
        (["generate", "audio", "--model", "hum", "--out", "x.mp3"], ["must name a .wav"]),
        (["generate", "audio", "--model", "hum", "--iterations", "0"], ["iterations"]),
        (["generate", "audio", "--model", "hum", "--steps", "20"], ["apply to diffusion models"]),
        (["generate", "image", "--model", "hum"], ["audio model, not an image model", "generate audio"]),
        (["eval", "image", "--model", "hum"], ["is an audio model", "eval audio"]),
        (["train", "audio", "--family", "gan", "--data", "digits", "--name", "g"], ["digits is image data"]),
        (["train", "image", "--family", "gan", "--data", "spoken-digits", "--name", "g"], ["audio data"]),
    ],
)
def test_bad_audio_commands_are_one_clear_line(audio_cli_home, args, needles):
    assert_clean_error(genlab_cli(*args, home=audio_cli_home), *needles)


def test_generate_audio_refuses_an_image_model(tmp_path):
    out = genlab_cli("generate", "audio", "--model", "gan-digits", "--prompt", "7", home=tmp_path)
    assert_clean_error(out, "gan-digits is a gan image model, not an audio model", "generate image")
