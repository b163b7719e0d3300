"""`vidgen eval` over folders: bad items are skipped and reported, the report is written, FD separates."""

import json

import numpy as np
import pytest

from vidgen import export_video, read_video
from vidgen.data import shapes
from vidgen.eval.evaluate import evaluate, evaluate_folder, real_videos

from .test_cli import vidgen


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    shapes.write_dataset(folder, num_videos=4, frames=8, canvas=64, seed=5)
    lines = (folder / "captions.jsonl").read_text().splitlines()
    (folder / "empty.mp4").write_bytes(b"")
    export_video(np.zeros((8, 64, 48, 3), np.uint8), folder / "wide.mp4")
    lines += [json.dumps({"file": "empty.mp4", "caption": json.loads(lines[0])["caption"]}),
              json.dumps({"file": "wide.mp4", "caption": json.loads(lines[0])["caption"]}),
              json.dumps({"file": json.loads(lines[1])["file"], "caption": "a purple dragon flying"}),
              json.dumps({"file": "missing.mp4", "caption": json.loads(lines[0])["caption"]})]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_folder_evaluation_skips_and_reports(shapes_folder):
    report = evaluate_folder(shapes_folder, frechet=False)
    assert report.summary["videos"] == 4 and report.summary["skipped"] == 4
    reasons = {s["video"]: s["reason"] for s in report.skipped}
    assert "square frames" in reasons["wide.mp4"] and "could not read" in reasons["empty.mp4"]
    assert "shapes grammar" in next(r for v, r in reasons.items() if v.startswith("shapes_"))
    assert "could not read" in reasons["missing.mp4"]
    assert report.summary["attributes_correct"] > 0.99 and report.summary["trajectory_rmse"] < 0.5
    assert "attributes_correct" in report.table()


def test_cli_data_and_eval(tmp_path, shapes_folder):
    made = vidgen("data", "shapes", "--out", tmp_path / "d", "--videos", "2", "--frames", "6", "--size", "32")
    assert made.returncode == 0, made.stderr
    assert len((tmp_path / "d" / "captions.jsonl").read_text().splitlines()) == 2
    scored = vidgen("eval", "--videos", shapes_folder, "--no-fd", "--report", tmp_path / "r.json")
    assert scored.returncode == 0, scored.stderr
    assert "skipped wide.mp4" in scored.stdout
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["videos"] == 4
    bad = vidgen("eval", "--videos", tmp_path / "nothing")
    assert bad.returncode == 2 and "captions.jsonl" in bad.stderr


def test_frechet_distance_separates_real_from_corrupted():
    """Measured with the shipped classifier: same ≈ 41; shuffled ≈ 560, frozen ≈ 1580, colours BGR ≈ 150."""
    captions = [shapes.sample_scene(np.random.default_rng(i), "train").caption() for i in range(48)]
    real = real_videos(captions, 16, 64, seed=1)

    def fd(videos):
        return evaluate([(str(i), v, c) for i, (v, c) in enumerate(zip(videos, captions))]).summary[
            "frechet_distance"]

    same = fd(real)  # against other placements of the same captions
    shuffled = fd([v[np.random.default_rng(i).permutation(16)] for i, v in enumerate(real)])
    frozen = fd([np.repeat(v[:1], 16, axis=0) for v in real])
    recoloured = fd([v[..., ::-1].copy() for v in real])
    assert same * 3 < min(shuffled, frozen, recoloured), (same, shuffled, frozen, recoloured)


@pytest.mark.parametrize("mode", ["autoregressive", "independent"])
def test_cli_generates_then_scores(tiny_model, tmp_path, mode):
    run = vidgen("eval", "--model", tiny_model, "--videos", tmp_path / "gen", "--num-prompts", "1", "--mode", mode,
                 "--videos-per-prompt", "2", "--frames", "3", "--steps", "2", "--no-fd", "--prompts", "heldout",
                 "--scheduler", "dpm++", "--guidance", "3")
    assert run.returncode == 0, run.stderr
    assert [len(read_video(p)) for p in sorted((tmp_path / "gen").glob("*.mp4"))] == [3, 3]
    report = json.loads((tmp_path / "gen" / "eval.json").read_text())
    assert report["summary"]["videos"] + report["summary"]["skipped"] == 2
    captions = {json.loads(x)["caption"] for x in (tmp_path / "gen" / "captions.jsonl").read_text().splitlines()}
    assert len(captions) == 1 and shapes.parse_caption(captions.pop()).split == "heldout"


def test_cli_eval_rejects_bad_generation_settings(tiny_model, tmp_path):
    run = vidgen("eval", "--model", tiny_model, "--videos", tmp_path / "gen", "--scheduler", "magic")
    assert run.returncode == 2 and "scheduler" in run.stderr and "magic" in run.stderr and "dpm++" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "gen").exists()
