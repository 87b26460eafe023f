"""Video files and the video codec: frames <-> tensors, MP4/WebM/GIF with the frame rate and the
metadata inside, and prompts that name a clip's digit, direction and speed."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.codecs.video import Motion, motion_label, parse_motion, to_frames, to_tensor
from genlab.core import InvalidRequestError, VideoArtifact, load_artifact
from genlab.core.video import decode_video, encode_video

DIGITS = [str(i) for i in range(10)]


def clip(t: int = 8, side: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = np.zeros((t, side, side, 1), np.uint8)
    for i in range(t):  # a bright square moving right over a faint texture
        frames[i] = rng.integers(0, 40, (side, side, 1))
        frames[i, 8:16, 2 * i : 2 * i + 8] = 220
    return frames


def test_gif_holds_grey_frames_exactly_and_every_format_keeps_rate_and_metadata():
    frames = clip()
    for fmt in ("mp4", "webm", "gif"):
        data = encode_video(frames, 8.0, fmt, comment='{"k": "v"}')
        back, fps, comment = decode_video(data)
        assert back.shape == (8, 32, 32, 3) and comment == '{"k": "v"}'
        assert abs(fps - 8.0) < 0.5  # GIF keeps delays in hundredths of a second: 12 or 13 cs
        error = np.abs(back[..., 0].astype(int) - frames[..., 0]).mean()
        assert error == 0 if fmt == "gif" else error < 8  # H.264 and VP9 are lossy, but close
    assert encode_video(frames, 8.0, "mp4")[4:8] == b"ftyp"  # an MP4 container


def test_a_gif_keeps_every_frame_of_a_run_of_identical_ones():
    frames = clip()
    frames[3:6] = frames[3]  # Pillow merges these into one frame of three delays
    back, fps, _ = decode_video(encode_video(frames, 8.0, "gif"))
    assert np.array_equal(back[..., 0], frames[..., 0]) and abs(fps - 8.0) < 0.5


def test_an_artifact_saves_mp4_and_gif_with_its_provenance_inside(tmp_path):
    art = VideoArtifact.create(clip(), 8.0, label="7 left fast", model="m", family="video-diffusion", seed=3)
    assert art.duration_s == 1.0 and art.provenance.modality == "video"
    gif = load_artifact(art.save(tmp_path / "c.gif"))
    assert gif.provenance == art.provenance and gif.content_sha256() == art.sha256  # exact
    mp4 = load_artifact(art.save(tmp_path / "c.mp4"))
    assert mp4.provenance == art.provenance and mp4.frames.shape == (8, 32, 32, 1) and mp4.fps == 8.0
    with pytest.raises(InvalidRequestError, match="saved as"):
        art.save(tmp_path / "c.avi")


def test_what_is_not_a_video_is_one_clear_error(tmp_path):
    with pytest.raises(InvalidRequestError, match="not a video file"):
        decode_video(b"\x00\x00\x00\x18ftypmp42 but nothing after it")
    with pytest.raises(InvalidRequestError, match="uint8"):
        encode_video(np.zeros((8, 32, 32), np.float32), 8.0)
    with pytest.raises(InvalidRequestError, match="even width"):
        encode_video(np.zeros((2, 31, 31), np.uint8), 8.0)
    with pytest.raises(InvalidRequestError, match="unknown video format"):
        encode_video(clip(), 8.0, "avi")
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(InvalidRequestError):
        load_artifact(tmp_path / "x.mp4")


def test_frames_and_tensors_round_trip():
    frames = clip()
    x = to_tensor(frames)
    assert x.shape == (8, 1, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_frames(x), frames)


def test_a_prompt_names_digit_direction_and_speed():
    assert parse_motion("a 7 moving left, fast", DIGITS) == Motion(7, 0, 1)
    assert parse_motion("Seven going downwards slowly", DIGITS) == Motion(7, 3, 0)
    assert parse_motion("a 3 moving up", DIGITS) == Motion(3, 2, None)
    # what the prompt leaves out is drawn from the seed: the same seed, the same clip
    labels = {motion_label(Motion(3, 2, None), (10, 4, 2), seed) for seed in range(40)}
    assert labels == {(3 * 4 + 2) * 2, (3 * 4 + 2) * 2 + 1}
    assert motion_label(Motion(), (10, 4, 2), 5) == motion_label(Motion(), (10, 4, 2), 5)
    for bad, match in [
        ("a 7 moving sideways", "sideways"),
        ("a 7 and a 3", "two"),
        ("a 7 left right", "two"),
    ]:
        with pytest.raises(InvalidRequestError, match=match):
            parse_motion(bad, DIGITS)


def test_genlab_writes_and_reads_mp4_without_loading_pyav_into_its_own_process(tmp_path):
    """PyAV's wheels link GPL encoders (libx264, libx265): they run in a child process only."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from genlab.core.video import decode_video, encode_video\n"
        "frames, _, _ = decode_video(encode_video(np.zeros((2, 8, 8), np.uint8), 8.0, 'mp4'))\n"
        "assert frames.shape == (2, 8, 8, 3)\n"
        "loaded = [m for m in sys.modules if m == 'av' or m.startswith('av.')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
