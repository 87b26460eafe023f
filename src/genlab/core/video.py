"""Video files: uint8 frames <-> MP4 (H.264), WebM (VP9) and GIF, with a comment in the metadata.

MP4 and WebM are written and read by PyAV (FFmpeg) in a child process (``video_process.py`` says
why: PyAV's wheels link GPL encoders, and genlab's process loads nothing GPL). GIF is written and
read here by Pillow: a palette of 256 levels, so a grey clip round-trips exactly; its comment
extension holds the metadata. Pillow stores a run of identical frames as one frame with their summed
delay; reading expands it again, so only a clip whose every frame is the same reads back as one frame. The frame rate is in every file (MP4/WebM time base, GIF delays).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from genlab.core.errors import InvalidRequestError

VIDEO_FORMATS = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
VIDEO_SUFFIXES = {f".{f}" for f in VIDEO_FORMATS}
_PROCESS = Path(__file__).with_name("video_process.py")
_TIMEOUT_S = 120


def check_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) or (T, H, W, 1|3) uint8 -> (T, H, W, C); anything else is a clear error."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] not in (1, 3) or len(frames) == 0:
        raise InvalidRequestError(
            f"video frames must be uint8 (T, H, W) or (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    return np.ascontiguousarray(frames)


def check_format(fmt: str) -> str:
    if fmt not in VIDEO_FORMATS:
        raise InvalidRequestError(
            f"unknown video format {fmt!r}; expected one of {', '.join(VIDEO_FORMATS)}", param="format"
        )
    return fmt


def encode_video(frames: np.ndarray, fps: float, fmt: str = "mp4", comment: str = "") -> bytes:
    """Frames as a file of ``fmt`` at ``fps`` frames per second, ``comment`` in its metadata."""
    frames, fmt = check_frames(frames), check_format(fmt)
    if not 0 < fps <= 240:
        raise InvalidRequestError(f"fps must be in (0, 240], got {fps!r}", param="fps")
    if fmt == "gif":
        return _encode_gif(frames, fps, comment)
    t, h, w, c = frames.shape
    if h % 2 or w % 2:  # yuv420p halves the chroma planes
        raise InvalidRequestError(f"{fmt} needs an even width and height, got {w}x{h}", param="size")
    header = {"frames": t, "height": h, "width": w, "channels": c, "fps": fps, "format": fmt}
    line = json.dumps({**header, "comment": comment}).encode() + b"\n"
    return _run("encode", line + frames.tobytes())


def decode_video(data: bytes) -> tuple[np.ndarray, float, str | None]:
    """A clip's bytes -> ((T, H, W, 3) uint8 frames, fps, the metadata comment or None)."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _decode_gif(data)
    out = _run("decode", data)
    line, _, raw = out.partition(b"\n")
    header = json.loads(line)
    t, h, w = header["frames"], header["height"], header["width"]
    frames = np.frombuffer(raw, np.uint8).reshape(t, h, w, 3).copy()
    return frames, float(header["fps"]), header["comment"]


def read_video(path: str | Path) -> tuple[np.ndarray, float, str | None]:
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"no such video file: {path}")
    return decode_video(path.read_bytes())


def _run(command: str, data: bytes) -> bytes:
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(_PROCESS), command],
            input=data,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidRequestError(f"video {command} took over {_TIMEOUT_S} s") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reason given"]
        what = "not a video file FFmpeg can read" if command == "decode" else "the encoder failed"
        raise InvalidRequestError(f"{what}: {reason[0][:300]}")
    return done.stdout


def _encode_gif(frames: np.ndarray, fps: float, comment: str) -> bytes:
    from PIL import Image

    mode = "L" if frames.shape[3] == 1 else "RGB"
    pictures = [Image.fromarray(f[..., 0] if mode == "L" else f, mode) for f in frames]
    buf = io.BytesIO()
    pictures[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=round(1000 / fps),  # GIF delays are in hundredths of a second: fps is rounded to them
        loop=0,
        comment=comment.encode("utf-8"),
        optimize=False,
    )
    return buf.getvalue()


def _decode_gif(data: bytes) -> tuple[np.ndarray, float, str | None]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as gif:
            comment = gif.info.get("comment")
            read = [
                (np.asarray(f.convert("RGB")), f.info.get("duration") or 100)
                for f in ImageSequence.Iterator(gif)
            ]
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidRequestError(f"not a GIF Pillow can read: {e}") from None
    # Pillow writes a run of identical frames as one frame of their summed delay: expand it again
    base = min(d for _, d in read)
    frames = np.stack([f for f, d in read for _ in range(max(1, round(d / base)))])
    text = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
    return frames, 1000 / base, text
