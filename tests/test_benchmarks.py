"""benchmarks/common.py: what the benchmarks share and their results rest on."""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import common  # noqa: E402


def test_timed_eval_reads_back_only_what_the_same_command_made(tiny_model, tmp_path, monkeypatch):
    tiny_model = shutil.copytree(tiny_model, tmp_path / "model")
    folder = tmp_path / "row"
    settings = dict(split="train", per_prompt=1, frames=2, num_inference_steps=2, seed=3)
    report, _, line = common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=1, **settings)
    assert line == (f"vidgen eval --model {tiny_model} --num-prompts 1 --prompts train --videos-per-prompt 1 "
                    f"--frames 2 --steps 2 --seed 3 --videos {folder}")
    assert (folder / "command.txt").read_text().splitlines()[0] == line and report.summary["videos"] == 1

    made = []
    real = common.generate_folder
    monkeypatch.setattr(common, "generate_folder", lambda *a, **k: made.append(k) or real(*a, **k))
    again, _, _ = common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=1, **settings)
    assert made == [] and json.dumps(again.summary) == json.dumps(report.summary)  # the same command: read back

    other, _, line = common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 1 and other.summary["videos"] == 2  # another command: made again, and recorded
    assert (folder / "command.txt").read_text().splitlines()[0] == line and "--num-prompts 2" in line

    (tiny_model / "scheduler" / "scheduler_config.json").write_text(  # the same command on other model files
        (tiny_model / "scheduler" / "scheduler_config.json").read_text().replace("}", ', "unused": 1}', 1))
    common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 2

    monkeypatch.setattr(common, "generator_digest", lambda: "vidgen's code after a change")  # the same command,
    common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)  # other sampling code
    assert len(made) == 3

    scored = []
    real_score = common.evaluate_folder
    monkeypatch.setattr(common, "evaluate_folder", lambda *a, **k: scored.append(a) or real_score(*a, **k))
    common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 3 and scored == []  # the same command, the same scorer: read back
    (folder / "scorer.txt").write_text("a scorer before a change\n")
    rescored, _, _ = common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 3 and len(scored) == 1 and rescored.summary["videos"] == 2  # scored again, not made
    assert (folder / "scorer.txt").read_text() == common.digest(Path(common.vidgen.eval.__file__).parent)


def test_wall_speed_bins_an_ideal_path_at_the_captions_speed_up_to_its_turn():
    """An object on its ideal path steps exactly the caption's step and is never ahead of it, in every step
    before the one that turns it (which is not counted), each binned by its gap to the wall, nearest last."""
    import numpy as np

    import wall_speed
    from vidgen.data.shapes import parse_caption
    from vidgen.eval.scorer import expected_path

    obj = parse_caption("a small red circle moving right quickly on a black background").objects[0]
    path = expected_path(obj, np.array([20.0, 32.0]), 64, 16)
    rows = wall_speed.object_steps(path, obj, 64)
    turn = int(np.flatnonzero(np.diff(path[:, 0]) < 0)[0])  # the first step back
    assert len(rows) == turn
    assert all(step == 1.0 and abs(ahead) < 1e-9 for _, step, ahead in rows)
    gaps = [gap for gap, _, _ in rows]
    assert gaps[0] == "more than 4 steps" and "2-4 steps" in gaps and gaps[-1] in ("1-2 steps", "under a step")


def test_turn_floor_whole_steps_meet_the_ideal_path_when_the_wall_falls_on_a_step():
    """A whole-step path equals the ideal one when the bounce falls on a frame boundary; otherwise it reverses
    at the step where the reflected centre lies nearer the reversed step, and then stays off by twice the gap
    left to the bound (at most one step)."""
    import numpy as np

    import turn_floor
    from vidgen.data.shapes import bounce

    v, low, high = np.array([3.0, 0.0]), 5.0, 59.0
    on_step = np.array([53.0, 30.0])  # 6 px short of the bound: the bounce falls on a frame boundary
    assert np.allclose(turn_floor.whole_step_path(on_step, v, low, high, 12), bounce(on_step, v, low, high, 12))
    for gap, turn_at in ((1.0, 1), (2.0, 2)):  # under half a step: reverse now; over it: one step later
        start = np.array([high - gap, 30.0])
        got, want = turn_floor.whole_step_path(start, v, low, high, 8), bounce(start, v, low, high, 8)
        assert np.flatnonzero(np.diff(got[:, 0]) < 0)[0] + 1 == turn_at
        assert np.allclose(np.abs(got[3:, 0] - want[3:, 0]), 2 * min(gap, 3.0 - gap))


def test_error_budget_puts_each_object_frame_down_to_one_cause(tmp_path):
    """Ground truth scores near 0 px; the same videos with one object gone after frame 8 put nearly all of their
    squared error down to lost frames; an object frame 0 draws at the wall it moves to starts at a wall."""
    import numpy as np

    import error_budget
    from vidgen.data import shapes
    from vidgen.video import export_video

    truth, broken = tmp_path / "truth", tmp_path / "broken"
    for folder in (truth, broken):
        folder.mkdir()
    lines = []
    for seed in range(4):
        video, scene, paths = shapes.make_video(seed, frames=16, canvas=64)
        name = f"v{seed}.mp4"
        export_video(video, truth / name)
        if len(scene.objects) == 2:
            gone = shapes.render(shapes.Scene(scene.objects[:1], scene.background), paths[:1], 64)
            video = np.concatenate([video[:8], gone[8:]])
        export_video(video, broken / name)
        lines.append(json.dumps({"file": name, "caption": scene.caption()}))
    for folder in (truth, broken):
        (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    clean, lost = error_budget.measure(truth), error_budget.measure(broken)
    assert clean["trajectory_rmse"] < 0.5 and lost["trajectory_rmse"] > 10
    assert lost["causes"]["lost"]["share"] > 0.95
    assert np.isclose(sum(c["share"] for c in lost["causes"].values()), 1, atol=0.01)

    scene = shapes.Scene((shapes.ShapeObject("red", "square", "small", "up", "quickly"),), "black")
    h = scene.objects[0].half_extent(64)
    at_wall = shapes.render(scene, [np.array([[32.0, h + 1.0]] * 16)], 64)
    mid = shapes.render(scene, [np.array([[32.0, 32.0]] * 16)], 64)
    assert error_budget.starts_at_wall(at_wall[:1], scene.caption(), 16) == [True]
    assert error_budget.starts_at_wall(mid[:1], scene.caption(), 16) == [False]


def test_wall_sides_finds_the_direction_that_turns_late(tmp_path):
    """Two fast squares, one moving up and one moving down, each bouncing as the world does; the same videos with
    the one moving up pressed at the top wall for three frames before it turns: only "up quickly" turns late, runs
    past the wall and grows its error, and were it as far off as the one moving down the folder would read
    less."""
    import numpy as np

    import wall_sides
    from vidgen.data import shapes
    from vidgen.eval.evaluate import evaluate_folder
    from vidgen.video import export_video

    def folder(name: str, stall: int) -> Path:
        out = tmp_path / name
        out.mkdir()
        lines = []
        for k, (direction, x) in enumerate((("up", 16.0), ("down", 48.0))):
            obj = shapes.ShapeObject("red", "square", "small", direction, "quickly")
            scene = shapes.Scene((obj,), "black")
            path = shapes.trajectory(obj, np.array([x, 32.0]), 64, 16)
            if direction == "up" and stall:
                turn = int(np.argmin(path[:, 1]))
                path = np.concatenate([path[:turn + 1], np.repeat(path[turn:turn + 1], stall, 0),
                                       path[turn + 1:]])[:16]
            export_video(shapes.render(scene, [path], 64), out / f"v{k}.mp4")
            lines.append(json.dumps({"file": f"v{k}.mp4", "caption": scene.caption()}))
        (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
        evaluate_folder(out, frechet=False).write(out / "eval.json")
        return out

    clean, late = wall_sides.measure(folder("clean", 0)), wall_sides.measure(folder("late", 3))
    assert clean["trajectory_rmse"] < 0.5
    up, down = late["motions"]["up quickly"], late["motions"]["down quickly"]
    assert up["two_or_more_frames_late"] == 1 and down["two_or_more_frames_late"] == 0
    assert up["rmse_px_found"] > 3 > down["rmse_px_found"] and up["share_of_squared_error"] > 0.9
    assert up["past_wall_px_mean"] < 1  # pressed at the wall, not through it
    assert late["rmse_were_up_as_the_other_directions"] < 0.5 < late["trajectory_rmse"]
