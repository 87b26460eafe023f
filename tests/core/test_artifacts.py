import json

import numpy as np
import pytest
from PIL import Image

from genlab.core import AudioArtifact, ImageArtifact, InvalidRequestError, TextArtifact, load_artifact
from genlab.core.io import atomic_write_text, sha256_bytes

PROV = {"model": "m", "family": "transformer", "seed": 3, "parameters": {"temperature": 0.5}}


def test_text_artifact_saves_txt_with_sidecar_and_loads_back(tmp_path):
    a = TextArtifact.create("héllo world", finish_reason="stop", **PROV)
    assert a.sha256 == sha256_bytes("héllo world".encode())
    assert a.modality == "text"
    path = a.save(tmp_path / "out.txt")
    assert path.read_text("utf-8") == "héllo world"
    sidecar = json.loads((tmp_path / "out.txt.provenance.json").read_text())
    assert sidecar["model"] == "m" and sidecar["seed"] == 3 and sidecar["sha256"] == a.sha256
    back = load_artifact(path)
    assert back.text == "héllo world" and back.provenance == a.provenance


def test_text_artifact_json_keeps_everything_in_one_file(tmp_path):
    a = TextArtifact.create("x = 1\n", modality="code", prompt_tokens=4, completion_tokens=3, **PROV)
    path = a.save(tmp_path / "out.json")
    data = json.loads(path.read_text())
    assert data["provenance"]["modality"] == "code"
    assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 3}
    back = load_artifact(path)
    assert back.text == "x = 1\n" and back.completion_tokens == 3 and back.provenance == a.provenance


def test_save_into_directory_names_file_by_hash(tmp_path):
    a = TextArtifact.create("abc", **PROV)
    path = a.save(tmp_path)
    assert path.name == f"{a.sha256[:16]}.txt"


def test_image_artifact_png_carries_provenance(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    a = ImageArtifact.create(pixels, label="7", **PROV)
    path = a.save(tmp_path / "img.png")
    with Image.open(path) as img:
        assert img.size == (12, 16) and img.mode == "RGB"
    back = load_artifact(path)
    np.testing.assert_array_equal(back.pixels, pixels)
    assert back.provenance == a.provenance
    assert not (tmp_path / "img.png.provenance.json").exists()


def test_grayscale_image_roundtrip(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    back = load_artifact(ImageArtifact.create(pixels, **PROV).save(tmp_path / "g.png"))
    np.testing.assert_array_equal(back.pixels, pixels)


def test_image_hash_depends_on_shape_and_pixels():
    flat = np.zeros((4, 4), np.uint8)
    assert (
        ImageArtifact.create(flat, **PROV).sha256 != ImageArtifact.create(flat.reshape(2, 8), **PROV).sha256
    )


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros(5, np.uint8)]
)
def test_image_rejects_wrong_pixels(bad):
    with pytest.raises(InvalidRequestError, match="uint8"):
        ImageArtifact.create(bad, **PROV)


def test_audio_artifact_wav_roundtrip(tmp_path):
    t = np.arange(16000) / 16000
    samples = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a = AudioArtifact.create(samples, 16000, label="three", **PROV)
    assert a.duration_s == pytest.approx(1.0)
    path = a.save(tmp_path / "a.wav")
    assert path.read_bytes()[:4] == b"RIFF"
    back = load_artifact(path)
    assert back.sample_rate == 16000
    np.testing.assert_allclose(back.samples, samples, atol=1 / 16384)  # 16-bit PCM
    np.testing.assert_array_equal(back.samples, a.samples)  # the artifact is exactly what the file holds
    assert back.content_sha256() == a.sha256
    assert back.provenance == a.provenance
    assert not (tmp_path / "a.wav.provenance.json").exists()  # inside the file, in a LIST/INFO chunk
    assert b"ICMT" in path.read_bytes()


def test_audio_rejects_stereo_and_bad_rate():
    with pytest.raises(InvalidRequestError, match="mono"):
        AudioArtifact.create(np.zeros((10, 2)), 16000, **PROV)
    with pytest.raises(InvalidRequestError, match="sample_rate"):
        AudioArtifact.create(np.zeros(10), 0, **PROV)


def test_unknown_modality_is_rejected():
    with pytest.raises(InvalidRequestError, match="modality"):
        TextArtifact.create("x", modality="smell", model="m", family="f")  # video is the fifth, now


def test_load_artifact_missing_file_and_missing_sidecar(tmp_path):
    with pytest.raises(InvalidRequestError, match="no such"):
        load_artifact(tmp_path / "nope.txt")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(InvalidRequestError, match="sidecar"):
        load_artifact(tmp_path / "plain.txt")


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left behind
