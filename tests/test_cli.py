"""The command line: bad input is one clear line and exit code 2, never a traceback. Whole commands run in
subprocesses, the real entry point; most bad-input cases run `main` in this process, since each subprocess pays
the libraries' imports (about 5 s on 2 cores) and the cases differ only in what `main` checks."""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from vidgen import VideoAdapter
from vidgen.cli import main


def vidgen(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.run([sys.executable, "-m", "vidgen.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def broken(tiny_model, tmp_path_factory):
    """Folders that are wrong in each way the CLI must explain."""
    root = tmp_path_factory.mktemp("broken")
    corrupt = root / "corrupt-model"
    shutil.copytree(tiny_model, corrupt)
    for f in (corrupt / "unet").glob("*.safetensors"):
        f.write_bytes(b"\x00garbage")
    bad_adapter = root / "bad-adapter"
    bad_adapter.mkdir()
    (bad_adapter / "config.json").write_text("{not json")
    from diffusers import UNet2DConditionModel
    unet_cfg = UNet2DConditionModel.load_config(tiny_model, subfolder="unet")
    other = UNet2DConditionModel.from_config({**unet_cfg, "cross_attention_dim": 48})
    VideoAdapter.for_unet(other).save_pretrained(root / "other-adapter")
    VideoAdapter.for_unet(UNet2DConditionModel.from_pretrained(tiny_model, subfolder="unet")).save_pretrained(
        root / "bad-defaults")
    (root / "bad-defaults" / "generation_config.json").write_text('{"num_inference_steps": 8, "speed": "fast"}')
    (root / "not-an-image.png").write_text("hello")
    return root


def test_error_cases(tiny_model, broken, tmp_path, capsys):
    m = ["--model", tiny_model]
    out = ["--out", tmp_path / "v.mp4"]
    cases = {
        "prompt": ["generate", "", *m, *out],
        "num_frames": ["generate", "a cat", *m, "--frames", "0", *out],
        "height": ["generate", "a cat", *m, "--height", "30", *out],
        "width": ["generate", "a cat", *m, "--width", "34", *out],
        "num_inference_steps": ["generate", "a cat", *m, "--steps", "0", *out],
        "guidance_scale": ["generate", "a cat", *m, "--guidance", "-2", *out],
        "context_guidance_scale": ["generate", "a cat", *m, "--context-guidance", "-1", *out],
        "later_guidance_scale": ["generate", "a cat", *m, "--later-guidance", "-1", *out],
        "null_field: got 'sideways'": ["generate", "a cat", *m, "--null-field", "sideways", *out],
        "'free' and 'unturned' need one trained with flow_words": ["generate", "a cat", *m, "--null-field", "free",
                                                                   *out],
        "first_frame_candidates": ["generate", "a cat", *m, "--first-frame-candidates", "0", *out],
        "mode": ["generate", "a cat", *m, "--mode", "sideways", *out],
        "scheduler": ["generate", "a cat", *m, "--scheduler", "lms", *out],
        "image: could not read": ["generate", "a cat", *m, "--image", broken / "not-an-image.png", *out],
        "--image": ["generate", "a cat", *m, "--image", broken / "missing.png", *out],
        "video: could not read": ["generate", "a cat", *m, "--video", broken / "not-an-image.png", *out],
        "no model_index.json": ["generate", "a cat", "--model", tmp_path / "nowhere", *out],
        "model: could not load": ["generate", "a cat", "--model", broken / "corrupt-model", *out],
        "adapter: got": ["generate", "a cat", *m, "--adapter", tmp_path / "no-adapter", *out],
        "adapter: could not load": ["generate", "a cat", *m, "--adapter", broken / "bad-adapter", *out],
        "adapter does not fit": ["generate", "a cat", *m, "--adapter", broken / "other-adapter", *out],
        "generation_config.json: got ['speed']": ["generate", "a cat", *m, "--adapter", broken / "bad-defaults", *out],
        "output path: got '": ["generate", "a cat", *m, "--out", tmp_path / "v.avi"],
        "does not exist": ["generate", "a cat", *m, "--out", tmp_path / "missing" / "v.mp4"],
        "invalid int value": ["generate", "a cat", *m, "--frames", "many", *out],
        "captions.jsonl": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run"],
        "learning_rate": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--learning-rate", "0"],
        "flow_horizon: got 0": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--flow-horizon", "0"],
        "flow_motions: got 2": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--flow-motions", "2"],
        "flow_words: got True": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--flow-words"],
        "word_binding: got 'colour'": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--word-binding",
                                       "colour"],
        "flow_sign_margin: got 2.0": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run",
                                      "--flow-sign-margin", "2"],
        "oversample: got ' and '": ["train", *m, "--data", tmp_path, "--out", tmp_path / "run", "--oversample", " and "],
        "crossing: got 1.5": ["data", "shapes", "--out", tmp_path / "world", "--crossing", "1.5"],
    }
    # through the real entry point, one case per way out (the parser, each command, a model that fails to load)
    apart = ["invalid int value", "model: could not load", "adapter does not fit", "captions.jsonl",
             "crossing: got 1.5"]
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(apart, ((r.returncode, r.stderr) for r in
                                   pool.map(lambda expected: vidgen(*cases[expected]), apart))))
    for expected in [case for case in cases if case not in apart]:  # in the table's order, run to run
        capsys.readouterr()
        code = main([str(arg) for arg in cases[expected]])
        results[expected] = code, capsys.readouterr().err
    for expected, (code, stderr) in results.items():
        lines = stderr.strip().splitlines()
        assert code == 2, (expected, stderr)
        assert "Traceback" not in stderr, stderr
        assert len(lines) == 1 and lines[0].startswith("vidgen: error:") and expected in lines[0], (expected, lines)
    assert not (tmp_path / "world").exists()  # a bad world option leaves no folder behind


def test_generate_and_train_end_to_end(tiny_model, video_folder, tmp_path):
    run = vidgen("train", "--model", tiny_model, "--data", video_folder, "--out", tmp_path / "run", "--num-frames",
                 "3", "--steps", "2", "--batch-size", "2", "--height", "32", "--width", "32", "--adapter-width", "32")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "adapter" / "config.json").is_file()
    gen = vidgen("generate", "a red square moving right", "--model", tiny_model, "--adapter", tmp_path / "run" /
                 "adapter", "--frames", "3", "--steps", "2", "--out", tmp_path / "v.gif", "--scheduler", "unipc")
    assert gen.returncode == 0, gen.stderr
    from vidgen import read_video
    assert read_video(tmp_path / "v.gif").shape == (3, 32, 32, 3)
