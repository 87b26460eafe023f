"""A tiny video model trained once per test module: the tiny preset of video diffusion on
moving-digits (seconds), through the one Trainer, into a test's GENLAB_HOME."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from genlab.core.settings import Settings

TINY = "tiny-video"  # not the shipped model's name


@contextlib.contextmanager
def one_thread():
    """Torch on one thread: on a shared, busy CPU, two threads spin-wait each other (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_tiny_video(home: Path, name: str = TINY) -> Path:
    from genlab.training.image import train_image_model

    previous = os.environ.get("GENLAB_HOME")
    os.environ["GENLAB_HOME"] = str(home)
    try:
        with one_thread():
            train_image_model(
                "video-diffusion",
                "moving-digits",
                name=name,
                preset_name="tiny",
                modality="video",
                progress=False,
                settings=Settings(home=home),
            )
    finally:
        if previous is None:
            os.environ.pop("GENLAB_HOME", None)
        else:
            os.environ["GENLAB_HOME"] = previous
    return home / "models" / name
