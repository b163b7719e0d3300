"""Reading and writing videos: H.264 mp4, webm, gif, or a directory of PNGs (a path ending in '/').

Writers take one (height, width, 3) uint8 frame at a time, so a long autoregressive video streams to disk
with flat memory (GIF is the exception: its palette is chosen over all frames, so frames are held until close).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import VidgenError

FORMATS = (".mp4", ".webm", ".gif")
ACCEPTED = "a path ending in .mp4, .webm or .gif, or a directory path ending in '/' for PNG frames"


def is_frame_dir(path: str | Path) -> bool:
    """A PNG-frames target: a path ending in '/' or an existing directory."""
    return str(path).endswith(("/", "\\")) or Path(path).is_dir()


def check_output_path(path: str | Path) -> None:
    """Raise a clear error for an unsupported extension, a missing parent directory, or an mp4/webm target
    without PyAV (before any frame is made)."""
    text = str(path)
    is_dir = is_frame_dir(text)
    if not is_dir and Path(text).suffix.lower() not in FORMATS:
        raise VidgenError(f"output path: got {text!r}; expected {ACCEPTED}")
    parent = Path(text.rstrip("/\\")).parent if is_dir else Path(text).parent
    if not parent.is_dir():
        raise VidgenError(f"output path: got {text!r}, whose parent directory {str(parent)!r} does not exist; "
                          "expected an existing directory")
    if not is_dir and Path(text).suffix.lower() in (".mp4", ".webm"):
        _av()


def _av():
    """PyAV, imported where a video file is encoded or decoded (GIF and PNG output do without it)."""
    try:
        import av
    except ImportError as exc:
        raise VidgenError(f"video: encoding or decoding mp4/webm/gif files needs PyAV, which did not import "
                          f"({exc}); expected `pip install av`, or output to a .gif or a PNG folder ('dir/')") from None
    return av


def _codec(candidates: tuple[str, ...]) -> str:
    """The first encoder this PyAV build carries (wheels differ)."""
    av = _av()
    for name in candidates:
        if name in av.codecs_available:
            return name
    raise VidgenError(f"video encoder: none of {candidates} is available in this PyAV build; "
                      "expected a PyAV wheel with libx264/mpeg4 or libvpx")


class VideoWriter:
    """Write frames to `path` one at a time; use as a context manager."""

    def __init__(self, path: str | Path, fps: float = 8):
        check_output_path(path)
        self.path, self.fps = str(path), fps
        self.count = 0
        self._container = self._stream = None
        self._gif: list[Image.Image] = []
        self._dir = is_frame_dir(self.path)
        if self._dir:
            Path(self.path).mkdir(exist_ok=True)

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        suffix = Path(self.path).suffix.lower()
        if self._dir:
            Image.fromarray(frame).save(Path(self.path) / f"frame_{self.count:06d}.png")
        elif suffix == ".gif":
            self._gif.append(Image.fromarray(frame))
        else:
            if self._container is None:
                self._open_av(suffix, frame.shape[1], frame.shape[0])
            for packet in self._stream.encode(self._frame_type.from_ndarray(frame, format="rgb24")):
                self._container.mux(packet)
        self.count += 1

    def _open_av(self, suffix: str, width: int, height: int) -> None:
        codec = _codec(("libx264", "mpeg4") if suffix == ".mp4" else ("libvpx-vp9", "libvpx"))
        av = _av()
        self._frame_type = av.VideoFrame
        self._container = av.open(self.path, mode="w")
        self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
        self._stream.width, self._stream.height = width, height
        even = width % 2 == 0 and height % 2 == 0
        self._stream.pix_fmt = "yuv420p" if even or codec != "libx264" else "yuv444p"
        if codec == "libx264":  # without MB-tree: with it the same frames do not always give the same bytes,
            #                       nor the same decoded frames (up to 29 levels apart at objects' edges), so
            #                       scores read from the decoded frames moved between runs
            self._stream.options = {"crf": "18", "x264-params": "mbtree=0"}

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        if self._gif:
            self._gif[0].save(self.path, save_all=True, append_images=self._gif[1:], loop=0,
                              duration=max(1, round(1000 / self.fps)))
            self._gif = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def export_video(frames, path: str | Path, fps: float = 8) -> str:
    """Write frames ((f, h, w, 3) uint8 array or an iterable of (h, w, 3) frames) to `path`; returns `path`."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return str(path)


def iter_frames(path: str | Path):
    """Decode a video file (or a directory of PNGs) to (h, w, 3) uint8 frames."""
    path = Path(path)
    if path.is_dir():
        for file in sorted(path.glob("*.png")):
            yield np.asarray(Image.open(file).convert("RGB"))
        return
    with _av().open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as (f, h, w, 3) uint8."""
    frames = list(iter_frames(path))
    if not frames:
        raise VidgenError(f"video: got {str(path)!r}, which holds no frames; expected a readable video")
    return np.stack(frames)


def resize_center_crop(frame: np.ndarray | Image.Image, height: int, width: int) -> np.ndarray:
    """Resize so the frame covers (height, width), then centre-crop: (height, width, 3) uint8."""
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))
