import json

import numpy as np
from PIL import Image

from genlab.core import AudioArtifact, ImageArtifact, TextArtifact
from genlab.safety.provenance import verify

from ..conftest import assert_clean_error, genlab_cli

PROV = {"model": "m", "family": "vae", "seed": 9, "parameters": {}}


def test_every_artifact_type_verifies_and_detects_edits(tmp_path):
    text = TextArtifact.create("hello", **PROV).save(tmp_path / "t.json")
    image = ImageArtifact.create(np.full((8, 8), 7, np.uint8), **PROV).save(tmp_path / "i.png")
    audio = AudioArtifact.create(np.sin(np.arange(1600) / 5) * 0.3, 16000, **PROV).save(tmp_path / "a.wav")
    for path in (text, image, audio):
        v = verify(path)
        assert v.made_by_genlab and v.content_unchanged and v.provenance["seed"] == 9, path
    data = json.loads(text.read_text())
    data["text"] = "hello, edited"
    text.write_text(json.dumps(data))
    assert verify(text).content_unchanged is False
    with Image.open(image) as img:  # edit one pixel, keep the metadata chunk
        pixels = np.asarray(img).copy()
        info = img.info
    pixels[0, 0] = 200
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("genlab:provenance", info["genlab:provenance"])
    Image.fromarray(pixels).save(image, pnginfo=meta)
    assert verify(image).content_unchanged is False


def test_foreign_files_are_not_claimed(tmp_path):
    png = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    v = verify(png)
    assert not v.made_by_genlab and "no genlab provenance" in v.detail
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(b"not a wav at all")
    assert not verify(garbage).made_by_genlab


def test_verify_cli(tmp_path):
    home = tmp_path / "home"
    ok = TextArtifact.create("hi", **PROV).save(tmp_path / "ok.json")
    out = genlab_cli("verify", str(ok), home=home)
    assert (
        out.returncode == 0 and "made by genlab: model m" in out.stdout and "content unchanged" in out.stdout
    )
    assert json.loads(genlab_cli("verify", str(ok), "--json", home=home).stdout)["made_by_genlab"] is True
    (tmp_path / "plain.txt").write_text("x")
    assert genlab_cli("verify", str(tmp_path / "plain.txt"), home=home).returncode == 1
    assert_clean_error(genlab_cli("verify", str(tmp_path / "missing.png"), home=home), "no such file")
    (tmp_path / "doc.pdf").write_text("x")
    assert_clean_error(genlab_cli("verify", str(tmp_path / "doc.pdf"), home=home), "cannot check .pdf")
