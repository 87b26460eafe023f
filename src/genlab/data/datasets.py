"""Which dataset a name or a path means: the built-in image and audio sets, or a user's folder."""

from __future__ import annotations

from pathlib import Path

from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.data.audio import holds_audio, load_audio_folder, load_spoken_digits
from genlab.data.images import (
    BUILTIN_AUDIO_DATASETS,
    BUILTIN_IMAGE_DATASETS,
    ImageDataset,
    load_digits,
    load_folder,
    load_glyphs,
)


def load_image_dataset(data: str, settings: Settings | None = None, *, seed: int = 0) -> ImageDataset:
    settings = settings or Settings.from_env()
    if data == "digits":
        return load_digits(16)
    if data == "digits8":
        return load_digits(8)
    if data == "glyphs":
        return load_glyphs(settings, seed=seed)
    if data == "spoken-digits":
        return load_spoken_digits(settings, seed=seed)
    if data == "moving-digits":
        from genlab.data.video import load_moving_digits

        return load_moving_digits(seed=seed)
    path = Path(data).expanduser()
    if path.is_dir() and holds_audio(path):
        return load_audio_folder(path, seed=seed)
    from genlab.data.video import holds_video, load_video_folder

    if path.is_dir() and holds_video(path):
        return load_video_folder(path, seed=seed)
    if path.exists():
        return load_folder(path, seed=seed)
    raise InvalidRequestError(
        f"unknown dataset {data!r}: expected {', '.join(BUILTIN_IMAGE_DATASETS + BUILTIN_AUDIO_DATASETS)}, "
        "moving-digits (video) "
        "or a folder of images, audio or video clips",
        param="data",
    )
