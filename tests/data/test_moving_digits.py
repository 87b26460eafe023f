"""moving-digits: the shipped digits moving on a 32x32 canvas, deterministic, labelled with digit,
direction and speed; the motion measure reads every real clip's labels back (the floor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data.datasets import load_image_dataset
from genlab.data.video import CANVAS, PIXELS_PER_FRAME, SPRITE, bounce, load_moving_digits
from genlab.evaluation.video import centroids, motion


@pytest.fixture(scope="module")
def data():
    return load_moving_digits()


def test_clips_are_deterministic_shaped_and_balanced(data):
    again = load_image_dataset("moving-digits")
    assert data.manifest()["train_sha256"] == again.manifest()["train_sha256"]
    assert data.train.shape[1:] == (8, 1, CANVAS, CANVAS) and data.modality == "video"
    assert data.shape_config() == {"channels": 1, "size": 32, "frames": 8, "factors": [10, 4, 2]}
    assert len(data.class_names) == 80 and data.class_names[(7 * 4 + 0) * 2 + 1] == "7 left fast"
    counts = np.bincount(data.train_labels.numpy(), minlength=80)
    assert counts.min() > 0.8 * counts.mean()  # every digit x direction x speed, about equally often
    x = data.train[torch.arange(4)]
    assert x.dtype == torch.float32 and float(x.min()) == -1.0 and float(x.max()) <= 1.0


def test_held_out_clips_move_handwriting_no_training_clip_shows(data):
    def sprites(clips):
        return {bytes(c[0].numpy().tobytes()) for c in clips.pixels[:, 0]}

    # a frame identical to a training frame would need the same digit image at the same place
    assert not sprites(data.val) & sprites(data.train)


def test_the_motion_measure_reads_every_real_clips_direction_and_speed(data):
    labels = data.val_labels
    direction, speed = (labels // 2) % 4, labels % 2
    moved, pace = motion(centroids(data.val[:]))
    assert torch.equal(moved, direction)
    asked = torch.tensor(PIXELS_PER_FRAME, dtype=torch.float32)[speed]
    assert float((pace - asked).abs().max()) < 1e-4


def test_a_sprite_bounces_inside_the_canvas():
    room = CANVAS - SPRITE
    path = bounce(np.array([0, room - 1]), np.array([0, 2]), 12, room)
    assert path[:, 1].min() >= 0 and path[:, 1].max() <= room
    assert list(path[:4, 1]) == [room - 1, room - 1, room - 3, room - 5]  # off the right edge, back


def test_an_unknown_dataset_names_moving_digits():
    with pytest.raises(Exception, match="moving-digits"):
        load_image_dataset("/no/such/clips")
