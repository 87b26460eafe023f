"""The invisible watermark: found in what genlab makes, after the edits people make, and nowhere else."""

import io
import json
import shlex

import numpy as np
import pytest
import soundfile
from PIL import Image
from scipy.signal import resample_poly

from genlab.codecs.audio import MelCodec
from genlab.codecs.image import image_grid, to_uint8
from genlab.data.images import load_digits
from genlab.safety.watermark import (
    MIN_IMAGE_SIDE,
    THRESHOLD_Z,
    detect_audio,
    detect_image,
    embed_audio,
    embed_image,
    watermark_key,
)

from ..conftest import genlab_cli

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def digit_grid(start: int = 0) -> np.ndarray:
    data = load_digits(16)
    pixels = to_uint8(data.val[start : start + 16])[:, 0].numpy()
    return image_grid(list(pixels), scale=8)  # what `genlab generate image` writes: 16 digits, 8x


def jpeg(x: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def half(x: np.ndarray) -> np.ndarray:
    return np.asarray(
        Image.fromarray(x).resize((x.shape[1] // 2, x.shape[0] // 2), Image.Resampling.BILINEAR)
    )


def noisy(x: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    return np.clip(x + np.random.default_rng(1).normal(0, sigma, x.shape), 0, 255).astype(np.uint8)


EDITS = {"none": lambda x: x, "jpeg75": jpeg, "half": half, "noise5": noisy}


@pytest.mark.parametrize("edit", EDITS)
def test_image_mark_survives_common_edits(edit):
    grid = digit_grid()
    marked, embedded = embed_image(grid, KEY)
    assert embedded
    psnr = 10 * np.log10(255**2 / ((marked.astype(float) - grid) ** 2).mean())
    assert psnr > 32  # invisible to a casual eye at this level on these pictures
    assert detect_image(EDITS[edit](marked), KEY).present
    assert not detect_image(EDITS[edit](grid), KEY).present  # the same picture unmarked


def test_image_mark_needs_the_key_and_works_in_colour():
    grid = digit_grid(16)
    marked, _ = embed_image(grid, KEY)
    assert not detect_image(marked, OTHER).present
    colour = np.stack([grid, grid // 2, 255 - grid], axis=2)
    marked_colour, _ = embed_image(colour, KEY)
    assert marked_colour.shape == colour.shape and detect_image(jpeg(marked_colour), KEY).present


def test_small_images_are_not_marked_and_say_so():
    tiny = np.zeros((16, 16), np.uint8)
    out, embedded = embed_image(tiny, KEY)
    assert not embedded and out is tiny
    assert MIN_IMAGE_SIDE == 64 and "too small" in detect_image(tiny, KEY).detail


def test_unmarked_images_stay_below_the_threshold():
    zs = [detect_image(digit_grid(i), KEY).z for i in range(0, 320, 16)]
    assert max(zs) < THRESHOLD_Z and abs(np.mean(zs)) < 1.5


def speech() -> np.ndarray:
    from genlab.data.audio import Clip, synthesise

    return synthesise(Clip(4, "en-gb", "f3", 45, 150), MelCodec())


AUDIO_EDITS = {
    "none": (lambda x: x, 16000),
    "resample-8k": (lambda x: resample_poly(x, 1, 2), 8000),
    "resample-44.1k": (lambda x: resample_poly(x, 441, 160), 44100),
    "noise-20dB": (
        lambda x: x + np.random.default_rng(2).normal(0, np.sqrt((x**2).mean() / 100), len(x)),
        16000,
    ),
}


@pytest.mark.parametrize("edit", AUDIO_EDITS)
def test_audio_mark_survives_resampling_and_noise(edit):
    clip = speech()
    marked, embedded = embed_audio(clip, 16000, KEY)
    assert embedded and marked.shape == clip.shape and np.abs(marked).max() <= 1.0
    snr = 10 * np.log10((clip**2).sum() / ((marked - clip) ** 2).sum())
    assert snr > 20
    change, rate = AUDIO_EDITS[edit]
    assert detect_audio(change(marked), rate, KEY).present
    assert not detect_audio(change(clip), rate, KEY).present
    assert not detect_audio(marked, 16000, OTHER).present


def test_the_key_is_made_once_and_kept_private(tmp_path, monkeypatch):
    from genlab.core.settings import Settings

    monkeypatch.delenv("GENLAB_WATERMARK_KEY", raising=False)
    settings = Settings(home=tmp_path)
    key = watermark_key(settings)
    path = tmp_path / "keys" / "watermark.key"
    assert len(key) == 32 and path.stat().st_mode & 0o077 == 0
    assert watermark_key(settings) == key
    assert watermark_key(Settings(home=tmp_path, watermark_key=KEY.hex())) == KEY
    monkeypatch.setenv("GENLAB_WATERMARK_KEY", KEY.hex())  # read into the settings in one place
    assert Settings.from_env().watermark_key == KEY.hex()


def test_verify_finds_the_mark_in_a_jpeg_copy_of_a_generated_grid(tmp_path):
    home = tmp_path / "home"
    grid = tmp_path / "grid.png"
    out = genlab_cli(
        *shlex.split("generate image --model gan-digits -n 16 --seed 0 --out"), str(grid), home=home
    )
    assert out.returncode == 0, out.stderr
    untouched = json.loads(genlab_cli("verify", str(grid), "--json", home=home).stdout)
    assert untouched["made_by_genlab"] and "a grid of 16 images by gan-digits" in untouched["detail"]
    assert len(untouched["provenance"]["grid"]) == 16 and "metadata is gone" not in untouched["detail"]
    copy = tmp_path / "shared.jpg"
    Image.open(grid).convert("RGB").save(copy, quality=75)  # metadata gone, pixels re-encoded
    verdict = json.loads(genlab_cli("verify", str(copy), "--json", home=home).stdout)
    assert verdict["made_by_genlab"] and verdict["watermark"]["present"]
    assert verdict["content_unchanged"] is None and "metadata is gone" in verdict["detail"]
    photo = tmp_path / "photo.jpg"
    Image.fromarray(digit_grid()).save(photo, quality=75)
    other = genlab_cli("verify", str(photo), "--json", home=home)
    assert other.returncode == 1 and not json.loads(other.stdout)["made_by_genlab"]


def test_generated_audio_carries_the_mark_through_a_flac_copy(tmp_path):
    from genlab.core import AudioArtifact
    from genlab.safety.provenance import verify
    from genlab.safety.watermark import SCHEME

    marked, _ = embed_audio(speech(), 16000)
    art = AudioArtifact.create(marked, 16000, model="m", family="vae", seed=1, watermark=SCHEME)
    wav = art.save(tmp_path / "a.wav")
    v = verify(wav)
    assert v.trusted and v.provenance["watermark"] == SCHEME and v.watermark["present"]
    data, _ = soundfile.read(wav)
    soundfile.write(tmp_path / "copy.flac", resample_poly(data, 441, 160), 44100)
    copy = verify(tmp_path / "copy.flac")
    assert copy.made_by_genlab and copy.provenance is None and copy.watermark["present"]
