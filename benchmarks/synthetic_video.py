"""Generated H.264 clips for the media tests and benchmark (PyAV, no downloads).

The picture is a slowly moving colour gradient with a few bright moving squares and mild per-frame noise,
so the encoder produces ordinary inter frames (a static or pure-noise clip would make decoding unrealistically
cheap or expensive).
"""

from pathlib import Path

import av
import numpy as np


def write_h264(
    path: str | Path,
    seconds: float,
    width: int = 854,
    height: int = 480,
    fps: int = 30,
    seed: int = 0,
    crf: int = 28,
    keyframe_interval: int = 250,
) -> Path:
    """Write ``seconds`` of ``width`` x ``height`` yuv420p H.264 at ``fps`` to ``path`` and return it.

    ``keyframe_interval`` is libx264's default GOP (250), as in typical downloaded clips."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    squares = rng.uniform(0, 1, size=(4, 4))  # x, y, speed, colour per square
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(keyframe_interval)}
        for index in range(int(round(seconds * fps))):
            t = index / fps
            frame = np.empty((height, width, 3), dtype=np.float32)
            frame[..., 0] = 127 + 100 * np.sin(xs / 90 + t)
            frame[..., 1] = 127 + 100 * np.sin(ys / 70 - 0.7 * t)
            frame[..., 2] = 127 + 100 * np.sin((xs + ys) / 120 + 0.3 * t)
            for x, y, speed, colour in squares:
                cx = int((x * width + 60 * speed * t) % (width - 40))
                cy = int((y * height + 40 * speed * t) % (height - 40))
                frame[cy : cy + 40, cx : cx + 40] = 255 * colour
            frame += rng.normal(0, 3, size=(height, width, 1))
            image = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
