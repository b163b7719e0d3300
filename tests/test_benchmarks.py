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

    scored = []
    real_score = common.evaluate_folder
    monkeypatch.setattr(common, "evaluate_folder", lambda *a, **k: scored.append(a) or real_score(*a, **k))
    common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 2 and scored == []  # the same command, the same scorer: read back
    (folder / "scorer.txt").write_text("a scorer before a change\n")
    rescored, _, _ = common.timed_eval(folder, tiny_model, None, frechet=False, num_prompts=2, **settings)
    assert len(made) == 2 and len(scored) == 1 and rescored.summary["videos"] == 2  # scored again, not made
    assert (folder / "scorer.txt").read_text() == common.digest(Path(common.vidgen.eval.__file__).parent)
