import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vidgen.tiny import build_tiny_sd  # noqa: E402
from vidgen.video import export_video  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Stable Diffusion folder (VAE ×2, native size 32×32)."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"), seed=0)


@pytest.fixture(scope="session")
def pipe(tiny_model):
    from vidgen import VideoPipeline
    return VideoPipeline.from_pretrained(tiny_model)


def perturb(adapter, seed: int = 0) -> None:
    """Open the zero-initialised gates and heads, so that the context changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if name.endswith("gate"):
                p.fill_(1.0)
            elif name.startswith("spatial.heads"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def moving_squares(n: int, frames: int = 12, size: int = 32, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """Simple captioned clips: a coloured square moving right."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        colour, name = [((220, 40, 40), "red"), ((40, 80, 220), "blue")][k % 2]
        y, x0 = rng.integers(0, size - 8, 2)
        video = np.zeros((frames, size, size, 3), np.uint8)
        for i in range(frames):
            x = (x0 + 2 * i) % (size - 8)
            video[i, y:y + 8, x:x + 8] = colour
        out.append((video, f"a {name} square moving right"))
    return out


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory):
    """A video folder with 6 good videos, one unreadable file and one too-short video."""
    folder = tmp_path_factory.mktemp("videos")
    lines = []
    for k, (video, caption) in enumerate(moving_squares(6)):
        export_video(video, folder / f"v{k}.mp4")
        lines.append({"file": f"v{k}.mp4", "caption": caption})
    (folder / "broken.mp4").write_bytes(b"not a video")
    lines.append({"file": "broken.mp4", "caption": "a red square moving right"})
    export_video(moving_squares(1, frames=2)[0][0], folder / "short.gif")
    lines.append({"file": "short.gif", "caption": "a red square moving right"})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder
