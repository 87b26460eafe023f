"""A folder of the user's clips (one sub-folder per class) trains a video model like moving-digits,
and its classes are what a prompt names; a file that is not a clip is one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.core import InvalidRequestError, VideoArtifact
from genlab.core.settings import Settings
from genlab.data.datasets import load_image_dataset
from genlab.registry import Registry
from genlab.training.image import train_image_model
from tests.video import one_thread


def write_clips(folder, name: str, step: int, count: int, suffix: str = ".gif") -> None:
    (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frames = np.zeros((10, 24, 24), np.uint8)
        for t in range(10):
            x = (2 + i + step * t) % 16
            frames[t, 8:16, x : x + 8] = 255 - 5 * (t % 2)  # a square moving at this class's pace
        art = VideoArtifact.create(frames, 10.0, model="user", family="camera", seed=i)
        art.save(folder / name / f"clip{i}{suffix}")


def test_a_folder_of_clips_is_a_video_dataset_and_trains(tmp_path, monkeypatch):
    clips = tmp_path / "clips"
    write_clips(clips, "still", 0, 5)
    write_clips(clips, "moving", 1, 4)
    write_clips(clips, "moving", 1, 1, suffix=".mp4")
    data = load_image_dataset(str(clips))
    assert data.modality == "video" and data.class_names == ["moving", "still"]
    assert data.shape_config() == {"channels": 1, "size": 32, "frames": 10, "factors": [2]}
    assert len(data.train) + len(data.val) == 10 and data.codec["fps"] == pytest.approx(10.0, abs=0.5)

    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    with one_thread():
        train_image_model(
            "video-diffusion", str(clips), name="clips", preset_name="tiny", modality="video", progress=False
        )
        generator = Registry(Settings(home=tmp_path)).load("clips")
        made = generator.generate("still", n=1, seed=0, steps=2)
    assert made[0].label == "still" and made[0].frames.shape == (10, 32, 32, 1)
    with pytest.raises(InvalidRequestError, match="no class"):
        generator.generate("a 7 moving left", steps=2)


def test_a_file_that_is_not_a_clip_is_one_clear_error(tmp_path):
    clips = tmp_path / "clips"
    write_clips(clips, "a", 1, 4, suffix=".mp4")
    (clips / "a" / "broken.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64)
    with pytest.raises(InvalidRequestError, match=r"broken\.mp4 is not a readable clip"):
        load_image_dataset(str(clips))
