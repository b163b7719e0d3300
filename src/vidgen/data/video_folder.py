"""A folder of videos with captions: `captions.jsonl` lines of {"file": ..., "caption": ...}.

Each video (.mp4, .webm, .gif) is decoded with PyAV, resized and centre-cropped, and cut into clips of
`num_frames` frames taken every `stride` frames (non-overlapping). A file that cannot be decoded or is too
short is skipped, counted and reported once; it never stops training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VidgenError
from ..video import iter_frames, resize_center_crop

logger = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")


@dataclass
class Skipped:
    unreadable: list[str] = field(default_factory=list)
    too_short: list[str] = field(default_factory=list)

    def report(self, total: int) -> str:
        n = len(self.unreadable) + len(self.too_short)
        if n == 0:
            return f"read {total} videos"
        names = ", ".join((self.unreadable + self.too_short)[:5]) + (" ..." if n > 5 else "")
        return (f"read {total - n} of {total} videos; skipped {len(self.unreadable)} unreadable and "
                f"{len(self.too_short)} too short: {names}")


def read_captions(folder: str | Path) -> list[tuple[Path, str]]:
    """(video path, caption) pairs from `folder/captions.jsonl`, with clear errors for a malformed file."""
    folder = Path(folder)
    index = folder / "captions.jsonl"
    if not index.is_file():
        raise VidgenError(f"data: got {str(folder)!r}, which has no captions.jsonl; expected a folder of videos "
                          'with a captions.jsonl of {"file": ..., "caption": ...} lines')
    pairs = []
    for n, line in enumerate(index.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            pairs.append((folder / entry["file"], str(entry["caption"])))
        except (ValueError, KeyError, TypeError):
            raise VidgenError(f"captions.jsonl line {n}: got {line[:80]!r}; expected "
                              '{"file": "<video file>", "caption": "<text>"}') from None
    if not pairs:
        raise VidgenError(f"data: {str(index)!r} lists no videos; expected at least one line")
    return pairs


class VideoFolderDataset:
    """Clips (num_frames, height, width, 3) uint8 and their captions, decoded once into memory."""

    def __init__(self, folder: str | Path, num_frames: int, height: int, width: int, stride: int = 1):
        self.clips: list[np.ndarray] = []
        self.captions: list[str] = []
        pairs = read_captions(folder)
        self.skipped = Skipped()
        span = (num_frames - 1) * stride + 1
        for path, caption in pairs:
            try:
                frames = [resize_center_crop(f, height, width) for f in iter_frames(path)]
            except Exception:  # PyAV raises several error types for broken or missing files
                self.skipped.unreadable.append(path.name)
                continue
            if len(frames) < span:
                self.skipped.too_short.append(path.name)
                continue
            video = np.stack(frames)
            for start in range(0, len(video) - span + 1, num_frames * stride):
                self.clips.append(video[start:start + span:stride])
                self.captions.append(caption)
        self.report = self.skipped.report(len(pairs))
        logger.info(self.report)
        if not self.clips:
            raise VidgenError(f"data: no usable clip of {num_frames} frames (stride {stride}) in {str(folder)!r} "
                              f"({self.report}); expected videos of at least {span} frames")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        return self.clips[i], self.captions[i]
