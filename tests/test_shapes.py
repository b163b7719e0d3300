"""The shapes world and its scorer: the scorer must pass ground truth (also degraded) and fail corruptions."""

import json
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image, ImageFilter

from vidgen import VidgenError, export_video, read_video
from vidgen.data import shapes
from vidgen.eval.evaluate import summarize
from vidgen.eval.scorer import score_video

WORLD = [(seed, canvas) for canvas in (64, 32) for seed in range(16)]


def h264(video, tmp_path):
    path = tmp_path / "round-trip.mp4"
    export_video(video, path)
    return read_video(path)


def blur(video):
    return np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(0.7))) for f in video])


def vae_like(video):
    """Bilinear ×2 down, bicubic up. (A ×4 pass, 16×16 at 64 px, blurs a small triangle into a cross-like blob
    and measures 97.9% attribute accuracy: a learned decoder restores edges that bicubic upsampling cannot.)"""
    s = video.shape[1]
    return np.stack([np.asarray(Image.fromarray(f).resize((s // 2, s // 2), Image.BILINEAR).resize(
        (s, s), Image.BICUBIC)) for f in video])


def test_world_is_deterministic_and_follows_its_rules():
    a, scene, paths = shapes.make_video(7, frames=20)
    b, _, _ = shapes.make_video(7, frames=20)
    assert np.array_equal(a, b) and a.shape == (20, 64, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, shapes.make_video(8, frames=20)[0])
    assert shapes.parse_caption(scene.caption()) == scene
    for obj, path in zip(scene.objects, paths):  # objects stay whole inside the canvas
        h = obj.half_extent(64)
        assert (path >= h - 1e-9).all() and (path <= 64 - h + 1e-9).all()


def test_bounce_is_elastic():
    moving = shapes.bounce(np.array([57.0, 32.0]), np.array([3.0, 0.0]), 5.0, 59.0, 4)
    assert np.allclose(moving[:, 0], [57.0, 58.0, 55.0, 52.0])  # 57 → 60 reflects to 58 at the wall 59
    assert np.allclose(moving[:, 1], 32.0)


def test_splits_are_disjoint_and_cover_the_vocabulary():
    rng = np.random.default_rng(0)
    train = [shapes.sample_scene(rng, "train") for _ in range(300)]
    held = [shapes.sample_scene(rng, "heldout") for _ in range(100)]
    assert all(s.split == "train" for s in train) and all(s.split == "heldout" for s in held)
    seen = {(o.colour, o.shape) for s in train for o in s.objects}
    assert not seen & shapes.HELD_OUT_COLOUR_SHAPE
    words = {w for s in train for w in s.caption().split()} | {w for s in train for w in s.caption(False).split()}
    assert words == set(shapes.VOCABULARY)


def test_captions_outside_the_grammar_are_clear_errors():
    for bad in ("a red circle", "a small red circle moving sideways slowly on a black background",
                "a small red circle standing still and a large red cross standing still on a black background", ""):
        with pytest.raises(VidgenError, match="caption"):
            shapes.parse_caption(bad)


def test_write_dataset_is_a_video_folder(tmp_path):
    shapes.write_dataset(tmp_path, num_videos=3, frames=6, canvas=32, seed=1, split="heldout")
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(shapes.parse_caption(x["caption"]).split == "heldout" for x in lines)
    assert read_video(tmp_path / lines[0]["file"]).shape == (6, 32, 32, 3)


@pytest.mark.parametrize("degrade", ["none", "blur", "vae", "h264"])
def test_scorer_passes_ground_truth(degrade, tmp_path):
    """Attribute accuracy ≥ 99.5% (99% after H.264 at 32 px) and trajectory error ≤ 0.5 px on ground truth, one
    and two objects, at 64 and 32 px, clean and degraded."""
    for canvas in (64, 32):
        scores = []
        for seed in range(30):
            video, scene, _ = shapes.make_video(seed, frames=16, canvas=canvas)
            video = {"none": lambda v: v, "blur": blur, "vae": vae_like,
                     "h264": lambda v: h264(v, tmp_path)}[degrade](video)
            scores.append(asdict(score_video(video, scene.caption())))
        assert {len(shapes.parse_caption(s["caption"]).objects) for s in scores} == {1, 2}
        summary = summarize(scores)  # per object-frame, as `vidgen eval` reports it
        # libx264 here does not write the same bytes for the same frames every time (1 to 15 of 60 videos encoded
        # four times each, on one thread too), and at 32 px, where a small object has two or three chroma samples,
        # that moves an object-frame or two: 99.59% (3 of 736 wrong) on most runs, below 99.5% now and then
        least = 0.99 if degrade == "h264" and canvas == 32 else 0.995
        assert summary["attributes_correct"] >= least and summary["count_correct"] >= least, summary
        assert summary["trajectory_rmse"] <= 0.5 and summary["direction_accuracy"] >= 0.99, summary


def crossing_videos(n, canvas=64):
    """Ground truth of two-object captions whose objects start apart and whose paths then cross: the world's
    own videos avoid this unless asked (`place(cross=True)`), but a first frame drawn by a model puts objects
    anywhere."""
    rng, out = np.random.default_rng(0), []
    while len(out) < n:
        scene = shapes.sample_scene(rng, "train")
        if len(scene.objects) == 2:
            paths = shapes.place(scene, rng, canvas, 16, cross=True)
            out.append((shapes.render(scene, paths, canvas), scene.caption(), paths))
    return out


def test_crossing_share_of_the_world():
    """`crossing` 0 leaves the videos as they were; at 1 every two-object video starts apart and then crosses."""
    plain = shapes.ShapesDataset(12, frames=16, seed=5)
    assert all(np.array_equal(plain[i][0], shapes.ShapesDataset(12, frames=16, seed=5, crossing=0.0)[i][0])
               for i in range(12))
    assert shapes.ShapesDataset(40, frames=16, seed=5, crossing=1.0).cache_key != plain.cache_key
    crossed = []
    for i in range(40):  # two objects that move alike (or both stand still) cannot cross
        _, scene, paths = shapes.make_video(int(np.random.SeedSequence([5, i]).generate_state(1)[0]), crossing=1.0)
        if len(paths) == 2:
            gaps = np.linalg.norm(paths[0] - paths[1], axis=1) - sum(o.half_extent(64) for o in scene.objects) * 2 ** .5
            assert gaps[0] > 0
            crossed.append(gaps.min() < 0)
    assert len(crossed) >= 10 and np.mean(crossed) >= 0.8, crossed
    with pytest.raises(VidgenError, match="crossing"):
        shapes.ShapesDataset(3, crossing=1.5)


@pytest.mark.parametrize("degrade", ["none", "h264"])
def test_scorer_passes_ground_truth_whose_paths_cross(degrade, tmp_path):
    """An object hidden behind the one drawn over it is left out as an overlap, not scored as lost; a pair of
    frames with an overlapped end tells no direction."""
    scores = [asdict(score_video(v if degrade == "none" else h264(v, tmp_path), c)) for v, c, _ in
              crossing_videos(40)]
    summary = summarize(scores)
    assert summary["overlap_frames"] > 0.2 * 40 * 32, summary  # they do cross
    assert summary["attributes_correct"] >= 0.995 and summary["identity_consistency"] >= 0.99, summary
    assert summary["trajectory_rmse"] <= 0.5 and summary["direction_accuracy"] >= 0.99, summary


def test_an_object_lost_away_from_the_other_is_still_the_worst_error():
    """Only where the caption's path puts a missing object under the other one does it count as hidden: an object
    that vanishes after frame 0 is excused near the crossing alone."""
    for video, caption, paths in crossing_videos(10):
        scene = shapes.parse_caption(caption)
        reach = sum(o.half_extent(64) for o in scene.objects) * 2 ** .5 + 1
        far = int((np.linalg.norm(paths[0] - paths[1], axis=1)[1:] > reach + 2).sum())
        lost = shapes.render(shapes.Scene(scene.objects[:1], scene.background), paths[:1], 64)
        clean, broken = score_video(video, caption), score_video(np.concatenate([video[:1], lost[1:]]), caption)
        assert clean.trajectory_rmse < 1 and clean.found == 1.0
        assert broken.found <= 1 - far / 32 and (far == 0 or broken.trajectory_rmse > 10), caption


def test_path_errors_by_object_pool_to_the_trajectory_error():
    """`path_error_by_object` holds each object-frame's squared error as the scorer pooled it: None where the
    overlap rule leaves the frame out, the canvas side squared where the object is lost."""
    for video, caption, paths in crossing_videos(4):
        scene = shapes.parse_caption(caption)
        lost = shapes.render(shapes.Scene(scene.objects[:1], scene.background), paths[:1], 64)
        for frames in (video, np.concatenate([video[:8], lost[8:]])):
            score = score_video(frames, caption)
            errors = score.details["path_error_by_object"]
            kept = np.array([e for row in errors for e in row if e is not None])
            assert [len(row) for row in errors] == [16, 16] and len(kept) == score.object_frames
            assert np.isclose(np.sqrt(kept.mean()), score.trajectory_rmse)
            assert np.isclose((kept == 64 ** 2).mean(), 1 - score.found)


def moving_video(seed=3, canvas=64):
    """Ground truth with every object moving quickly, so that temporal corruptions have something to break."""
    rng = np.random.default_rng(seed)
    scene = shapes.Scene((shapes.ShapeObject("red", "square", "large", "right", "quickly"),
                          shapes.ShapeObject("blue", "circle", "small", "down", "quickly")), "gray")
    return shapes.render(scene, shapes.place(scene, rng, canvas, 16), canvas), scene.caption()


def test_shuffled_frames_raise_trajectory_error():
    video, caption = moving_video()
    clean = score_video(video, caption)
    shuffled = score_video(video[np.random.default_rng(0).permutation(16)], caption)
    assert clean.trajectory_rmse < 0.5 and shuffled.trajectory_rmse > 5


def test_frozen_frames_lower_direction_accuracy():
    video, caption = moving_video()
    frozen = score_video(np.repeat(video[:1], 16, axis=0), caption)
    assert score_video(video, caption).direction_accuracy > 0.99 and frozen.direction_accuracy < 0.1
    split = frozen.details["direction_by_object"]  # the same hits, per object, with what the caption asks
    assert [o["motion"] for o in split] == [o.speed or "still" for o in shapes.parse_caption(caption).objects]
    assert sum(o["hits"] for o in split) / sum(o["pairs"] for o in split) == pytest.approx(frozen.direction_accuracy)


def test_direction_pairs_after_a_bounce_are_counted_apart():
    """A fast object that bounces: every pair is a hit, and the pairs after the bounce (running against the
    caption's direction) are counted as reversed; an object that sticks at the wall from the bounce on misses
    exactly those."""
    scene = shapes.Scene((shapes.ShapeObject("red", "square", "small", "right", "quickly"),), "black")
    for seed in range(50):  # the first placement whose path bounces within 16 frames
        video = shapes.render(scene, shapes.place(scene, np.random.default_rng(seed), 64, 16), 64)
        clean = score_video(video, scene.caption()).details["direction_by_object"][0]
        if 2 <= clean["reversed_pairs"] <= 10:
            break
    assert clean["hits"] == clean["pairs"] and clean["reversed_hits"] == clean["reversed_pairs"] >= 2
    turn = 16 - clean["reversed_pairs"] - 1  # about where the object turns (pairs are two frames apart)
    stuck = np.concatenate([video[:turn], np.repeat(video[turn:turn + 1], 16 - turn, axis=0)])
    split = score_video(stuck, scene.caption()).details["direction_by_object"][0]
    assert split["reversed_pairs"] == clean["reversed_pairs"] and split["reversed_hits"] == 0


def test_swapped_colours_lower_attribute_accuracy():
    video, caption = moving_video()
    swapped = score_video(video, caption.replace("red", "green").replace("blue", "yellow"))
    assert swapped.attributes_correct < 0.1 and swapped.colour_correct < 0.1


def test_a_second_copy_of_an_object_is_a_count_error():
    """Objects are counted as blobs. A same-colour duplicate (the base model's commonest frame-0 mistake) is an
    extra object: the caption's one blue circle drawn twice is counted wrong, as is an extra green circle, while
    the original video, and the same with its background tinted green, stay right."""
    video, caption = moving_video()
    scene = shapes.parse_caption(caption)
    centres = shapes.place(scene, np.random.default_rng(3), 64, 16)
    still = np.full((16, 2), [6.0, 58.0])  # a corner the two moving objects do not reach
    twice = shapes.render(shapes.Scene(scene.objects + scene.objects[1:], scene.background), centres + [still], 64)
    assert score_video(video, caption).count_correct == 1.0
    assert score_video(twice, caption).count_correct < 0.2
    green = shapes.Scene(scene.objects + (shapes.ShapeObject("green", "circle", "small"),), scene.background)
    assert score_video(shapes.render(green, centres + [still], 64), caption).count_correct < 0.2  # another colour
    tint = np.clip(video + np.array([-12, 14, -12]), 0, 255).astype(np.uint8)  # gray drawn a little green
    assert score_video(tint, caption).count_correct == 1.0


def test_flickering_background_raises_flicker():
    video, caption = moving_video()
    flicker = video.astype(int)
    flicker[1::2] += 25
    flickered = score_video(np.clip(flicker, 0, 255).astype(np.uint8), caption)
    assert score_video(video, caption).flicker < 0.5 and flickered.flicker > 15


def test_independent_random_frames_score_badly_on_every_temporal_metric():
    video, caption = moving_video()
    frames = np.stack([shapes.make_video(100 + i, frames=1)[0][0] for i in range(16)])
    score = score_video(frames, caption)
    assert score.trajectory_rmse > 5 and score.direction_accuracy < 0.5
    assert score.identity_consistency < 0.5 and score.flicker > 15


def test_malformed_input_is_a_clear_error():
    video, caption = moving_video()
    with pytest.raises(VidgenError, match="shapes grammar"):
        score_video(video, "a purple dragon")
    with pytest.raises(VidgenError, match="square frames"):
        score_video(video[:, :, :40], caption)
    with pytest.raises(VidgenError, match="square frames"):
        score_video(video[:0], caption)


def test_shapes_vocabulary_is_one_token_per_word():
    from vidgen.tiny import build_clip_tokenizer
    tokenizer = build_clip_tokenizer(shapes.VOCABULARY, max_length=32)
    caption = shapes.make_video(4, frames=1)[1].caption()
    assert len(tokenizer(caption).input_ids) == len(caption.split()) + 2
