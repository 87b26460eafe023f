"""PyAV in a process of its own: encode frames to MP4 (H.264) or WebM (VP9), or decode a clip.

Run by ``genlab.core.video`` as ``python -I video_process.py encode|decode``; it imports nothing of
genlab. Why a separate process: the FFmpeg that PyAV's wheels bundle is LGPL, but the same wheels
link libx264 and libx265 (GPL-2.0-or-later) into it, and genlab's own process loads nothing GPL.

encode: stdin  = one JSON line {"frames", "height", "width", "channels", "fps", "format", "comment"}
                 then the uint8 frames, (T, H, W, C) in C order
        stdout = the encoded file
decode: stdin  = a clip's bytes (any container FFmpeg reads)
        stdout = one JSON line {"frames", "height", "width", "fps", "comment"}, then (T, H, W, 3) uint8
"""

import io
import json
import sys
from fractions import Fraction

import av
import numpy as np

CODECS = {
    "mp4": ("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    "webm": ("libvpx-vp9", "yuv420p", {"crf": "24", "b": "0"}),
}


def encode(header: dict, raw: bytes) -> bytes:
    t, h, w, c = header["frames"], header["height"], header["width"], header["channels"]
    frames = np.frombuffer(raw, np.uint8).reshape(t, h, w, c)
    codec, pix_fmt, options = CODECS[header["format"]]
    out = io.BytesIO()
    with av.open(out, "w", format=header["format"]) as container:
        container.metadata["comment"] = header["comment"]
        stream = container.add_stream(codec, rate=Fraction(header["fps"]).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.options = options
        for pixels in frames:
            rgb = np.repeat(pixels, 3, axis=2) if c == 1 else pixels
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def decode(data: bytes) -> tuple[dict, bytes]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate or 0
        comment = container.metadata.get("comment") or container.metadata.get("COMMENT")
    if not frames:
        raise ValueError("no video frames")
    h, w = frames[0].shape[:2]
    header = {"frames": len(frames), "height": h, "width": w, "fps": float(rate), "comment": comment}
    return header, np.stack(frames).tobytes()


def main() -> None:
    data = sys.stdin.buffer.read()
    try:
        if sys.argv[1] == "encode":
            line, _, raw = data.partition(b"\n")
            sys.stdout.buffer.write(encode(json.loads(line), raw))
        else:
            header, raw = decode(data)
            sys.stdout.buffer.write(json.dumps(header).encode() + b"\n" + raw)
    except Exception as e:  # one line for the parent to report; never a traceback of a user's file
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
