"""The video family, declared once (``families/video_diffusion.py``), trained by the one Trainer
through `genlab train video`, sampled by `genlab generate video`, measured by `genlab eval video`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.cli.main import main
from genlab.core import InvalidRequestError, load_artifact
from genlab.core.settings import Settings
from genlab.families.spec import family_spec
from genlab.families.video_diffusion import VideoDiffusion, VideoDiffusionConfig
from genlab.registry import Registry
from tests.conftest import seed_guard
from tests.video import TINY, one_thread


def genlab(*args: str, capsys) -> str:
    with pytest.raises(SystemExit) as done, one_thread():
        main(list(args))
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    return out.out


def test_the_family_is_declared_for_video_only():
    spec = family_spec("video-diffusion", "video")
    assert spec.modalities == ("video",) and set(spec.presets) == {"tiny", "small", "base"}
    with pytest.raises(InvalidRequestError, match="unknown image family"):
        family_spec("video-diffusion", "image")


def test_at_initialisation_the_net_is_an_image_unet_applied_frame_by_frame():
    """Temporal layers start at zero (VDM, Make-A-Video): permuting the frames permutes ε_θ."""
    torch.manual_seed(0)
    model = VideoDiffusion(VideoDiffusionConfig(num_classes=80, widths=[8, 16], heads=2)).eval()
    x, t, y = torch.randn(2, 8, 1, 32, 32), torch.tensor([10, 500]), torch.tensor([3, 70])
    order = torch.randperm(8)
    with torch.no_grad():
        assert torch.allclose(model.eps(x, t, y)[:, order], model.eps(x[:, order], t, y), atol=1e-5)
        for p in model.unet.parameters():  # once the temporal layers are trained, frames interact
            p.add_(torch.randn_like(p) * 0.05)
        assert not torch.allclose(model.eps(x, t, y)[:, order], model.eps(x[:, order], t, y), atol=1e-3)


def test_trained_sampled_and_measured_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    seed_guard(tmp_path)
    trained = json.loads(
        genlab(
            "train",
            "video",
            "--family",
            "video-diffusion",
            "--preset",
            "tiny",
            "--name",
            TINY,
            "--json",
            capsys=capsys,
        )
    )
    assert trained["name"] == TINY and trained["steps"] == 6
    config = json.loads((tmp_path / "models" / TINY / "config.json").read_text())
    assert config["kind"] == "video" and config["codec"]["fps"] == 8.0 and config["model"]["frames"] == 8

    out = tmp_path / "seven.mp4"
    made = json.loads(
        genlab(
            "generate",
            "video",
            "a 7 moving left, fast",
            "--model",
            TINY,
            "--steps",
            "2",
            "-n",
            "2",
            "--out",
            str(out),
            "--json",
            capsys=capsys,
        )
    )
    clips = made["clips"]
    assert [c["label"] for c in clips] == ["7 left fast"] * 2 and clips[0]["path"].endswith("seven-1.mp4")
    art = load_artifact(clips[0]["path"])
    assert (
        art.frames.shape == (8, 32, 32, 1)
        and art.provenance.model == TINY
        and art.provenance.watermark is None
    )

    metrics = json.loads(
        genlab("eval", "video", "-m", TINY, "--samples", "8", "--steps", "2", "--json", capsys=capsys)
    )
    for k in ("motion_accuracy", "frame_class_accuracy", "temporal_consistency", "frame_fid", "speed_error"):
        assert k in metrics and k in metrics["floor"]
    assert metrics["floor"]["motion_accuracy"] == 1.0 and metrics["floor"]["frame_class_accuracy"] > 0.95

    generator = Registry(Settings(home=tmp_path)).load(TINY)
    with one_thread():
        one = generator.generate("a 3 moving up", n=3, seed=40, steps=2)
        alone = generator.generate("a 3 moving up", n=1, seed=one[2].provenance.seed, steps=2)
    assert np.array_equal(one[2].frames, alone[0].frames)  # clip i is reproducible on its own
    assert {a.label.rsplit(" ", 1)[0] for a in one} == {"3 up"}
    with pytest.raises(InvalidRequestError, match="sideways"):
        generator.generate("a 3 moving sideways", steps=2)
    with pytest.raises(InvalidRequestError, match="positive integer"):
        generator.generate("a 3", steps=0)


def test_bad_cli_input_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as done:
        main(["generate", "video", "a 7", "--out", str(tmp_path / "x.avi")])
    assert done.value.code != 0 and "mp4" in capsys.readouterr().err
