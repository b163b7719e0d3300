"""Ground-truth scoring of shapes-world videos from pixels and the caption alone (no learned model).

For each caption object and frame: a soft mask of its colour (how far each pixel lies along the line from the
background colour to the object colour, for pixels near that line, so anti-aliased and blurred edges count
partly), its centroid, and the (shape, size) whose rendered (and possibly blurred) template best matches it. From these:
background, colour, shape, size and count correctness (objects are counted as blobs: a second blob of a
caption colour is an extra object); trajectory error against the motion the caption
implies, simulated from the object's position in frame 1 with the world's bounce rule; direction accuracy;
identity consistency; flicker of background pixels. Object-frames where two objects overlap are excluded from
the per-object figures and counted separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..data.shapes import BACKGROUNDS, COLOURS, REFERENCE_SIZE, SHAPES, SIZES, Scene, ShapeObject, bounce, \
    bounding_reach, parse_caption, signed_distance
from ..errors import VidgenError

LINE_DISTANCE = 120.0  # RGB distance from the background→colour line within which a pixel counts as the colour
DIRECTION_BASELINE = 2  # frames between the two positions whose displacement gives a direction
BLURS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)  # Gaussian blurs (σ, px) a template may take to match softened edges
PRESENT = 0.25  # a colour is present when its mask covers this share of the smallest object's area
COPY = 0.5  # a second blob of a caption colour is an extra object when it covers this share of that area


@dataclass
class Detection:
    present: bool
    centre: np.ndarray  # (x, y) object centre in px (the template's centre, not the mask's centroid)
    shape: str | None
    size: str | None
    area: float


@dataclass
class VideoScore:
    caption: str
    frames: int
    background_correct: float
    count_correct: float
    colour_correct: float
    shape_correct: float
    size_correct: float
    attributes_correct: float  # object-frames with colour, shape, size and background all correct
    trajectory_rmse: float  # px; an object-frame without the object counts as the canvas side
    direction_accuracy: float
    identity_consistency: float
    flicker: float  # mean |Δ| of background pixels between consecutive frames, in 0–255 units
    object_frames: int
    overlap_frames: int
    found: float = float("nan")  # object-frames where the object (or a stray of another shape) is located
    trajectory_rmse_found: float = float("nan")  # px, over those frames only: motion error apart from losses
    # background_detected; direction_by_object (hits per object); path_error_by_object: per object, each frame's
    # squared distance from the caption's path (px², the canvas side squared where the object is lost), None where
    # the overlap rule leaves the frame out: what trajectory_rmse pools
    details: dict = field(default_factory=dict)


def colour_masks(frames: np.ndarray, background: np.ndarray, colours) -> dict[str, np.ndarray]:
    """Colour name → (f, h, w) soft mask in [0, 1]: how far each pixel lies along the line from the background
    to that colour. Each pixel belongs to the one colour of `colours` whose line it lies nearest (within
    LINE_DISTANCE), so that anti-aliased and blurred edges count partly and no pixel counts twice."""
    x = frames.astype(np.float32) - background
    alphas, off = [], []
    for name in colours:
        axis = np.array(COLOURS[name], np.float32) - background
        alpha = np.clip(x @ axis / float(axis @ axis), 0.0, 1.0)
        alphas.append(alpha)
        off.append(np.linalg.norm(x - alpha[..., None] * axis, axis=-1))
    off = np.stack(off)
    owner = off.argmin(axis=0)
    near = off.min(axis=0) < LINE_DISTANCE
    return {name: np.where(near & (owner == k), alphas[k], 0.0) for k, name in enumerate(colours)}


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Boolean dilation of (f, h, w) masks by `px` pixels (a square neighbourhood; nothing wraps around)."""
    out = mask.copy()
    h, w = mask.shape[1:]
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
                mask[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@lru_cache(maxsize=None)
def _candidates(canvas: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(shape, size) → (how far the mask centroid lies below the object centre, half-extent), in px."""
    out = {}
    for shape in SHAPES:
        for size, half in SIZES.items():
            h = half * canvas / REFERENCE_SIZE
            out[(shape, size)] = (h / 3 if shape == "triangle" else 0.0, h)
    return out


def blobs(mask: np.ndarray, canvas: int) -> int:
    """How many separate object-sized blobs a soft mask (h, w) holds: the component above 0.2 around the densest
    spot left, grown by 2 px, counts when its mass reaches `min_area(canvas, COPY)` (compression smears of
    another colour stay below it); then it is taken away and the next sought."""
    count, mask, least = 0, mask.copy(), min_area(canvas, COPY)
    while mask.sum() >= least:
        peak = np.unravel_index(np.argmax(mask), mask.shape)
        if mask[peak] <= 0.2:
            break
        near = dilate(connected(mask > 0.2, peak)[None], 2)[0]
        count += int((mask * near).sum() >= least)
        mask = mask * ~near
    return count


def connected(binary: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 8-connected component of `binary` (h, w) that holds `seed` (empty when the seed is not in it)."""
    grown = np.zeros_like(binary)
    grown[seed] = binary[seed]
    while True:
        step = dilate(grown[None], 1)[0] & binary
        if (step == grown).all():
            return grown
        grown = step


def min_area(canvas: int, share: float = PRESENT) -> float:
    """Mask mass below which a colour counts as absent: PRESENT (or `share`) × the smallest object's area (a small
    triangle, 2h²)."""
    return share * 2 * (min(SIZES.values()) * canvas / REFERENCE_SIZE) ** 2


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (zero outside); mass-preserving away from the border."""
    if sigma <= 0:
        return image
    r = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, r)
    rows = sum(w * padded[:, j:j + image.shape[1]] for j, w in enumerate(kernel))
    return sum(w * rows[j:j + image.shape[0], :] for j, w in enumerate(kernel))


def detect(mask: np.ndarray, canvas: int) -> Detection:
    """Centre, shape and size of the object in one soft mask (h, w): the (shape, size) template, blurred by the
    amount that fits best (compression, blur and VAEs soften edges; blurring keeps the mass), placed at the
    mask's centroid, that matches the mask best in squared error over a window around it."""
    area = float(mask.sum())
    if area < min_area(canvas):
        return Detection(False, np.full(2, np.nan), None, None, area)
    ys, xs = np.indices(mask.shape) + 0.5
    # the blob around the densest object-sized spot, so that stray mass elsewhere (colour smears of another
    # object, noise) does not pull the centroid; then a window around it for the template fit
    peak = np.unravel_index(np.argmax(gaussian_blur(mask, min(SIZES.values()) * canvas / REFERENCE_SIZE)),
                            mask.shape)
    blob = connected(mask > 0.2, peak)
    if blob.any():  # a faint object (all below 0.2) keeps its whole mask
        mask = mask * dilate(blob[None], 2)[0]
    cx, cy = float((mask * xs).sum() / mask.sum()), float((mask * ys).sum() / mask.sum())
    reach = int(np.ceil(max(SIZES.values()) * canvas / REFERENCE_SIZE * 1.5 + 3 * max(BLURS)))
    rows = slice(max(0, int(cy) - reach), int(cy) + reach + 1)
    cols = slice(max(0, int(cx) - reach), int(cx) + reach + 1)
    local, wy, wx = mask[rows, cols], ys[rows, cols], xs[rows, cols]
    best, best_err = None, np.inf
    for (shape, size), (centroid_dy, h) in _candidates(canvas).items():
        centre = (cx, cy - centroid_dy)
        sharp = np.clip(0.5 - signed_distance(shape, wx - centre[0], wy - centre[1], h), 0.0, 1.0)
        for sigma in BLURS:
            err = float(((gaussian_blur(sharp, sigma) - local) ** 2).sum())
            if err < best_err:
                best, best_err = (shape, size, np.array(centre)), err
    return Detection(True, best[2], best[0], best[1], area)


def detect_background(frames: np.ndarray) -> str:
    """The world background nearest to the median border colour of the video."""
    border = np.concatenate([frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], axis=1)
    median = np.median(border.reshape(-1, 3), axis=0)
    return min(BACKGROUNDS, key=lambda name: np.linalg.norm(median - np.array(BACKGROUNDS[name])))


def expected_path(obj: ShapeObject, start: np.ndarray, canvas: int, frames: int) -> np.ndarray:
    h = obj.half_extent(canvas)
    return bounce(np.clip(start, h, canvas - h), obj.velocity(canvas), h, canvas - h, frames)


def score_video(frames: np.ndarray, caption: str) -> VideoScore:
    """Score one video (f, S, S, 3) uint8 against its caption."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] != frames.shape[2] or len(frames) == 0:
        raise VidgenError(f"video: got shape {tuple(frames.shape)}; expected (frames, S, S, 3) with square frames")
    scene: Scene = parse_caption(caption)
    f, canvas = frames.shape[0], frames.shape[1]
    bg_name = detect_background(frames)
    bg = np.array(BACKGROUNDS[scene.background], np.float32)  # masks are measured against the caption's background
    named = [o.colour for o in scene.objects]
    # geometry: each pixel goes to the nearest caption colour (colour smears of compression stay with their
    # object); colour: each pixel goes to the nearest of all colours, and an object's colour is right when it
    # is the dominant colour where the object was found
    own = colour_masks(frames, bg, named)
    every = colour_masks(frames, bg, list(COLOURS))
    dets = [[detect(own[c][i], canvas) for i in range(f)] for c in named]
    ys, xs = np.indices((canvas, canvas)) + 0.5
    colour_found = np.zeros((len(named), f), bool)
    for k, (obj, c) in enumerate(zip(scene.objects, named)):
        for i, d in enumerate(dets[k]):  # found, and its colour is the dominant one where it was found
            if d.present:
                near = np.hypot(xs - d.centre[0], ys - d.centre[1]) < obj.half_extent(canvas) * np.sqrt(2) + 1
                colour_found[k, i] = max(COLOURS, key=lambda name: every[name][i][near].sum()) == c
    near_objects = dilate(sum(own[c] * colour_found[k][:, None, None] for k, c in enumerate(named)) > 0.05, 2)
    strays = {c: (every[c] * ~near_objects).sum(axis=(1, 2)) for c in COLOURS if c not in named}
    # count: the objects found, plus every further blob of a caption colour and every blob of another colour
    # (a faint tint spread over the background, such as compression leaves on gray, is no object)
    extra = [[max(blobs(every[c][i], canvas) - 1, 0) for i in range(f)] for c in named]
    extra += [[blobs(every[c][i] * ~near_objects[i], canvas) for i in range(f)] for c in strays]
    count_ok = colour_found.sum(axis=0) + np.array(extra).sum(axis=0) == len(named)
    for i in range(f):  # a colour not found: judge shape and size on a stray blob, the largest first, one each
        found = sorted((c for c, v in strays.items() if v[i] >= min_area(canvas)), key=lambda c: -strays[c][i])
        for k in range(len(named)):
            if not colour_found[k, i]:
                stray = detect(every[found.pop(0)][i], canvas) if found else None
                dets[k][i] = Detection(False, np.full(2, np.nan), None, None, 0.0) if stray is None else \
                    Detection(False, stray.centre, stray.shape, stray.size, stray.area)

    overlap = _overlap(scene, dets, colour_found, canvas)

    colour_ok, shape_ok, size_ok, all_ok, identity, sq_err, direction = [], [], [], [], [], [], []
    found, sq_err_found, by_object, path_errors = [], [], [], []
    for k, obj in enumerate(scene.objects):
        d = dets[k]
        keep = ~overlap[k]
        c = colour_found[k]
        s = np.array([x.shape == obj.shape for x in d])
        z = np.array([x.size == obj.size for x in d])
        colour_ok += list(c[keep])
        shape_ok += list(s[keep])
        size_ok += list(z[keep])
        all_ok += list((c & s & z & (bg_name == scene.background))[keep])
        first = (d[0].present, d[0].shape, d[0].size)
        identity += [(x.present, x.shape, x.size) == first for x, kept in zip(d, keep) if kept]
        centres = np.array([x.centre for x in d])
        located = np.isfinite(centres).all(axis=1)
        found += list(located[keep])
        motion = "still" if obj.direction is None else obj.speed
        if not located[0]:
            sq_err += [canvas ** 2] * int(keep.sum())  # never found: the worst error the canvas allows
            path_errors.append([float(canvas ** 2) if kept else None for kept in keep])
            direction += [False] * max(f - DIRECTION_BASELINE, 0)
            by_object.append({"motion": motion, "hits": 0, "pairs": max(f - DIRECTION_BASELINE, 0),
                              "reversed_hits": 0, "reversed_pairs": 0})  # no start, no path to reverse
            continue
        want = expected_path(obj, centres[0], canvas, f)
        err = np.where(located, ((centres - want) ** 2).sum(axis=1), canvas ** 2)
        sq_err += list(err[keep])
        path_errors.append([float(e) if kept else None for e, kept in zip(err, keep)])
        sq_err_found += list(err[keep & located])
        hits, back = _direction_hits(obj, centres, want, canvas, keep)
        direction += hits
        by_object.append({"motion": motion, "hits": int(sum(hits)), "pairs": len(hits),
                          "reversed_hits": int(sum(h for h, r in zip(hits, back) if r)), "reversed_pairs": sum(back)})

    flicker = _flicker(frames, dets, [o.half_extent(canvas) for o in scene.objects])
    mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    return VideoScore(caption=caption, frames=f, background_correct=float(bg_name == scene.background),
                      count_correct=mean(count_ok[~overlap.any(axis=0)]), colour_correct=mean(colour_ok),
                      shape_correct=mean(shape_ok), size_correct=mean(size_ok), attributes_correct=mean(all_ok),
                      trajectory_rmse=float(np.sqrt(np.mean(sq_err))) if sq_err else float("nan"),
                      direction_accuracy=mean(direction), identity_consistency=mean(identity), flicker=flicker,
                      object_frames=int((~overlap).sum()), overlap_frames=int(overlap.sum()),
                      found=mean(found),
                      trajectory_rmse_found=float(np.sqrt(np.mean(sq_err_found))) if sq_err_found else float("nan"),
                      details={"background_detected": bg_name, "direction_by_object": by_object,
                               "path_error_by_object": path_errors})


def overlap_reach(scene: Scene, canvas: int) -> float:
    """The distance between two objects' centres within which they may overlap: the world's bounding circles
    (`bounding_reach`) plus 1 px."""
    return bounding_reach(scene, canvas) + 1


def _overlap(scene: Scene, dets: list[list[Detection]], colour_found: np.ndarray, canvas: int) -> np.ndarray:
    """(objects, f): the object-frames where two objects overlap, which the per-object figures leave out. Two
    objects overlap where both are located within the reach of their bounding circles; and an object whose
    colour is not found is hidden (not lost) where the other's colour is found within that reach of where the
    caption's path from frame 0 puts it: the ground truth of crossing paths hides the object behind the one
    drawn over it."""
    f = len(dets[0])
    overlap = np.zeros((len(scene.objects), f), bool)
    if len(scene.objects) != 2:
        return overlap
    reach = overlap_reach(scene, canvas)
    centres = [np.array([d.centre for d in row]) for row in dets]
    for i in range(f):
        ca, cb = centres[0][i], centres[1][i]
        overlap[:, i] = bool(np.isfinite(ca).all() and np.isfinite(cb).all() and np.linalg.norm(ca - cb) < reach)
    for k, obj in enumerate(scene.objects):
        if not np.isfinite(centres[k][0]).all():
            continue  # no start, no path: never found is the worst error
        want, other = expected_path(obj, centres[k][0], canvas, f), 1 - k
        near = np.linalg.norm(want - centres[other], axis=1) < reach  # False where the other is not located
        overlap[k] |= ~colour_found[k] & colour_found[other] & near
    return overlap


def _direction_hits(obj: ShapeObject, centres: np.ndarray, want: np.ndarray, canvas: int,
                    keep: np.ndarray) -> tuple[list[bool], list[bool]]:
    """Per pair of frames DIRECTION_BASELINE apart, both outside an overlap (`keep`): the displacement has the
    sign the (bouncing) caption motion implies and is at least half the slow speed's; a still object moves less
    than that. A baseline of two frames keeps the slow speed (0.5 px per frame at 32 px) well above the
    centroid jitter of compression. → (hits, and per pair whether the motion then runs against the caption's
    direction: after a bounce)."""
    still = 0.5 * DIRECTION_BASELINE * canvas / REFERENCE_SIZE
    hits, reversed_ = [], []
    for i in range(DIRECTION_BASELINE, len(centres)):
        if not (keep[i] and keep[i - DIRECTION_BASELINE]):
            continue  # an overlapped object's centre is not where it is
        moved = centres[i] - centres[i - DIRECTION_BASELINE]
        axis = 0 if obj.direction in ("left", "right") else 1
        expected = want[i, axis] - want[i - DIRECTION_BASELINE, axis]
        if obj.direction is not None and abs(expected) < still:
            continue  # a pair straddling a bounce may barely move: it tells no direction
        back = obj.direction is not None and bool(np.sign(expected) != np.sign(obj.velocity(canvas)[axis]))
        if not np.isfinite(moved).all():
            hit = False
        elif obj.direction is None:
            hit = bool(np.abs(moved).max() < still)
        else:
            hit = bool(np.sign(moved[axis]) == np.sign(expected) and abs(moved[axis]) >= still)
        hits.append(hit)
        reversed_.append(back)
    return hits, reversed_


def _flicker(frames: np.ndarray, dets: list[list[Detection]], half_extents: list[float]) -> float:
    """Mean absolute change between consecutive frames over the pixels that lie outside every detected object
    (its bounding circle plus 2 px, in both frames)."""
    if len(frames) < 2:
        return 0.0
    ys, xs = np.indices(frames.shape[1:3]) + 0.5
    covered = np.zeros(frames.shape[:3], bool)
    for row, h in zip(dets, half_extents):
        for i, d in enumerate(row):
            if np.isfinite(d.centre).all():
                covered[i] |= np.hypot(xs - d.centre[0], ys - d.centre[1]) < h * np.sqrt(2) + 2
    background = ~(covered[1:] | covered[:-1])
    diff = np.abs(frames[1:].astype(np.float32) - frames[:-1].astype(np.float32)).mean(axis=-1)
    return float(diff[background].mean()) if background.any() else 0.0
