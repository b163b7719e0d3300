"""The shapes world: captioned synthetic videos whose every frame has a known truth.

One or two objects (colour, shape, size, motion) on a plain background; objects move left, right, up or down,
slowly (1 px/frame at 64 px) or quickly (3 px/frame), or stand still, and bounce elastically off the edges
(the centre reflects at half-extent from each edge), so they always stay whole. Everything scales with the
canvas side. Rendering is vectorised and anti-aliased (coverage from signed distances at pixel centres).

The grammar is fixed so that results stay comparable across versions:
  `a {size} {colour} {shape} moving {direction} {speed}` | `a {size} {colour} {shape} standing still`,
  two objects joined by ` and `, then ` on a {background} background`.
The held-out split holds every scene that contains a (colour, shape) pair of `HELD_OUT_COLOUR_SHAPE` or a
(shape, direction) pair of `HELD_OUT_SHAPE_MOTION`; the train split holds all others, so a model trained on it
has seen every word but never these combinations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VidgenError, check

BACKGROUNDS = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40),
           "magenta": (200, 50, 200), "cyan": (40, 200, 210), "orange": (240, 130, 30)}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = {"small": 5.0, "large": 9.0}  # half-extent in px at a 64 px canvas
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
SPEEDS = {"slowly": 1.0, "quickly": 3.0}  # px per frame at a 64 px canvas
REFERENCE_SIZE = 64
HELD_OUT_COLOUR_SHAPE = frozenset({("red", "triangle"), ("blue", "circle"), ("yellow", "cross"),
                                   ("cyan", "square"), ("magenta", "circle")})
HELD_OUT_SHAPE_MOTION = frozenset({("circle", "up"), ("square", "left"), ("triangle", "down"), ("cross", "right")})
SPLITS = ("train", "heldout")
VOCABULARY = sorted({"a", "and", "on", "background", "moving", "standing", "still", *BACKGROUNDS, *COLOURS,
                     *SHAPES, *SIZES, *DIRECTIONS, *SPEEDS})


@dataclass(frozen=True)
class ShapeObject:
    colour: str
    shape: str
    size: str
    direction: str | None = None  # None: standing still
    speed: str | None = None

    def describe(self, motion: bool = True) -> str:
        text = f"a {self.size} {self.colour} {self.shape}"
        if not motion:
            return text
        return f"{text} standing still" if self.direction is None else f"{text} moving {self.direction} {self.speed}"

    def half_extent(self, canvas: int) -> float:
        return SIZES[self.size] * canvas / REFERENCE_SIZE

    def velocity(self, canvas: int) -> np.ndarray:
        if self.direction is None:
            return np.zeros(2)
        return np.array(DIRECTIONS[self.direction]) * SPEEDS[self.speed] * canvas / REFERENCE_SIZE

    @property
    def held_out(self) -> bool:
        return (self.colour, self.shape) in HELD_OUT_COLOUR_SHAPE or (self.shape, self.direction) in \
            HELD_OUT_SHAPE_MOTION


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: str

    def caption(self, motion: bool = True) -> str:
        """The full caption, or (motion=False) the appearance-only caption used for image training."""
        return " and ".join(o.describe(motion) for o in self.objects) + f" on a {self.background} background"

    @property
    def split(self) -> str:
        return "heldout" if any(o.held_out for o in self.objects) else "train"


_OBJECT = (rf"a (?P<size>{'|'.join(SIZES)}) (?P<colour>{'|'.join(COLOURS)}) (?P<shape>{'|'.join(SHAPES)}) "
           rf"(?:moving (?P<direction>{'|'.join(DIRECTIONS)}) (?P<speed>{'|'.join(SPEEDS)})|standing still)")


def parse_caption(caption: str) -> Scene:
    """The scene a caption describes; a caption outside the grammar is a clear error."""
    match = re.fullmatch(rf"(?P<objects>.+) on a (?P<bg>{'|'.join(BACKGROUNDS)}) background", caption.strip())
    parts = match["objects"].split(" and ") if match else []
    objects = [re.fullmatch(_OBJECT, p) for p in parts]
    if not match or not 1 <= len(parts) <= 2 or not all(objects):
        raise VidgenError(f"caption: got {caption!r}; expected the shapes grammar, e.g. 'a small red circle moving "
                          "right quickly and a large blue cross standing still on a black background'")
    scene = Scene(tuple(ShapeObject(m["colour"], m["shape"], m["size"], m["direction"], m["speed"])
                        for m in objects), match["bg"])
    if len(scene.objects) == 2 and scene.objects[0].colour == scene.objects[1].colour:
        raise VidgenError(f"caption: got {caption!r}, two objects of one colour; expected different colours")
    return scene


def sample_scene(rng: np.random.Generator, split: str = "train") -> Scene:
    """A random scene of the given split (rejection sampling over the split's combinations)."""
    check(split in SPLITS, "split", split, " or ".join(SPLITS))
    while True:
        count = int(rng.integers(1, 3))
        colours = rng.choice(list(COLOURS), size=count, replace=False)
        objects = []
        for colour in colours:
            moving = rng.random() < 0.8
            objects.append(ShapeObject(str(colour), str(rng.choice(SHAPES)), str(rng.choice(list(SIZES))),
                                       str(rng.choice(list(DIRECTIONS))) if moving else None,
                                       str(rng.choice(list(SPEEDS))) if moving else None))
        scene = Scene(tuple(objects), str(rng.choice(list(BACKGROUNDS))))
        if scene.split == split:
            return scene


def bounce(start: np.ndarray, velocity: np.ndarray, low: float, high: float, frames: int) -> np.ndarray:
    """Centres (frames, 2) moving at `velocity` per frame, reflecting elastically inside [low, high]."""
    t = np.arange(frames)[:, None]
    span = high - low
    if span <= 0:
        return np.broadcast_to(np.full(2, (low + high) / 2), (frames, 2)).copy()
    u = np.mod(start[None] + velocity[None] * t - low, 2 * span)
    return low + np.where(u <= span, u, 2 * span - u)


def trajectory(obj: ShapeObject, start: np.ndarray, canvas: int, frames: int) -> np.ndarray:
    h = obj.half_extent(canvas)
    return bounce(np.asarray(start, float), obj.velocity(canvas), h, canvas - h, frames)


def signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, h: float) -> np.ndarray:
    """Signed distance (px, negative inside) of pixel offsets from a shape of half-extent h (y points down)."""
    if shape == "circle":
        return np.hypot(dx, dy) - h
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - h
    if shape == "triangle":  # apex up at (0, -h), base along y = h
        edge = (2 * np.abs(dx) - (dy + h)) / np.sqrt(5.0)
        return np.maximum(edge, dy - h)
    if shape == "cross":  # a plus sign with arms h/3 thick on each side of the axis
        w = h / 3
        return np.minimum(np.maximum(np.abs(dx) - h, np.abs(dy) - w), np.maximum(np.abs(dx) - w, np.abs(dy) - h))
    raise ValueError(shape)


def render(scene: Scene, centres: list[np.ndarray], canvas: int) -> np.ndarray:
    """Frames (f, canvas, canvas, 3) uint8; `centres[k]` is object k's (f, 2) trajectory (x, y) in px."""
    frames = len(centres[0])
    grid = np.arange(canvas) + 0.5
    image = np.broadcast_to(np.array(BACKGROUNDS[scene.background], float), (frames, canvas, canvas, 3)).copy()
    for obj, path in zip(scene.objects, centres):
        dx = grid[None, None, :] - path[:, 0, None, None]  # (f, 1, S)
        dy = grid[None, :, None] - path[:, 1, None, None]  # (f, S, 1)
        cover = np.clip(0.5 - signed_distance(obj.shape, dx, dy, obj.half_extent(canvas)), 0.0, 1.0)[..., None]
        image = image * (1 - cover) + np.array(COLOURS[obj.colour], float) * cover  # later objects on top
    return np.round(image).astype(np.uint8)


def bounding_reach(scene: Scene, canvas: int) -> float:
    """The distance between two objects' centres below which their bounding circles overlap."""
    return sum(o.half_extent(canvas) for o in scene.objects) * np.sqrt(2)


def place(scene: Scene, rng: np.random.Generator, canvas: int, frames: int, tries: int = 200,
          cross: bool = False) -> list[np.ndarray]:
    """Trajectories whose objects never overlap during the frames where possible (rejection sampling); with
    `cross`, two objects that start apart and whose paths then cross (overlap at some frame), where possible."""
    best, best_gap = None, -np.inf
    for _ in range(tries):
        paths = []
        for obj in scene.objects:
            h = obj.half_extent(canvas)
            paths.append(trajectory(obj, rng.uniform(h, canvas - h, size=2), canvas, frames))
        if len(paths) == 1:
            return paths
        reach = bounding_reach(scene, canvas)
        gaps = np.linalg.norm(paths[0] - paths[1], axis=1) - reach
        gap = float(gaps[0] if cross else gaps.min())
        if gap > 0 and (not cross or gaps.min() < 0):
            return paths
        if gap > best_gap:
            best, best_gap = paths, gap
    return best


def make_video(seed: int, frames: int = 16, canvas: int = 64, split: str = "train", crossing: float = 0.0):
    """(frames (f, S, S, 3) uint8, scene, trajectories), deterministic in `seed`. A two-object scene's paths
    cross (`place(cross=True)`) with probability `crossing`; at 0 no draw is made for it, so the videos are the
    ones made before the option existed."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, split)
    cross = crossing > 0 and len(scene.objects) == 2 and bool(rng.random() < crossing)
    paths = place(scene, rng, canvas, frames, cross=cross)
    return render(scene, paths, canvas), scene, paths


class ShapesDataset:
    """In-memory shapes videos: item i is (frames, caption), deterministic in (seed, i)."""

    def __init__(self, num_videos: int, frames: int = 16, canvas: int = 64, seed: int = 0, split: str = "train",
                 crossing: float = 0.0):
        check(split in SPLITS, "split", split, " or ".join(SPLITS))
        check(0 <= crossing <= 1, "crossing", crossing, "a share in [0, 1]")
        self.num_videos, self.frames, self.canvas, self.seed, self.split = num_videos, frames, canvas, seed, split
        self.crossing = crossing

    @property
    def cache_key(self) -> str:
        """Identifies the contents, so that training can cache their latents."""
        key = f"shapes-{self.num_videos}-{self.frames}-{self.canvas}-{self.seed}-{self.split}"
        return key + (f"-cross{self.crossing}" if self.crossing else "")

    def __len__(self) -> int:
        return self.num_videos

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        video, scene, _ = make_video(int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0]),
                                     self.frames, self.canvas, self.split, self.crossing)
        return video, scene.caption()


def write_dataset(out: str | Path, num_videos: int, frames: int = 16, canvas: int = 64, seed: int = 0,
                  split: str = "train", fps: float = 8, crossing: float = 0.0) -> Path:
    """Write `num_videos` mp4 files and `captions.jsonl` (the video-folder format `vidgen train` reads)."""
    from ..video import export_video

    check(num_videos >= 1, "videos", num_videos, "an integer ≥ 1")
    check(frames >= 1, "frames", frames, "an integer ≥ 1")
    check(canvas >= 16 and canvas % 2 == 0, "size", canvas, "an even integer ≥ 16")
    data = ShapesDataset(num_videos, frames, canvas, seed, split, crossing)  # checks split and crossing first
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(num_videos):
        video, caption = data[i]
        name = f"shapes_{split}_{seed}_{i:06d}.mp4"
        export_video(video, out / name, fps=fps)
        lines.append(json.dumps({"file": name, "caption": caption}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return out
