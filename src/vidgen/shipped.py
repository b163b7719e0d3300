"""The demo model that ships in the repository's `models/` folder (see docs/model-card.md): a small Stable
Diffusion folder trained on the shapes world (`shapes-base/`) and its video adapter (`shapes-adapter/`)."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import VidgenError

MODELS = Path(__file__).resolve().parents[2] / "models"
BASE = MODELS / "shapes-base"
ADAPTER = MODELS / "shapes-adapter"


def shipped(folder: Path) -> Path:
    """`folder` if it holds a shipped model, else a one-line error saying where it was looked for."""
    if not (folder / ("model_index.json" if folder == BASE else "config.json")).is_file():
        raise VidgenError(f"model: none given, and the shipped demo model is not at {str(folder)!r}; expected a "
                          "clone of the vidgen repository installed with `pip install -e .` (the weights live in "
                          "its models/ folder), or --model DIR (a diffusers Stable Diffusion folder)")
    return folder


def unknown_words(prompt: str) -> list[str]:
    """The words of `prompt` outside the shapes world's vocabulary, the only words the demo model was trained on
    (its tokenizer splits any other into pieces it has never seen), each once, in order."""
    from .data.shapes import VOCABULARY

    words = re.findall(r"[a-z]+", prompt.lower())
    return list(dict.fromkeys(w for w in words if w not in VOCABULARY))


def unknown_words_note(prompt: str) -> str | None:
    """One line naming the `unknown_words` of `prompt`, the words the demo model knows and an example caption;
    None when the demo model knows every word."""
    from .data.shapes import VOCABULARY

    unknown = unknown_words(prompt)
    if not unknown:
        return None
    return (f"the demo model knows only the shapes world's words, not {', '.join(unknown)}; it draws captions made "
            f"of {' '.join(VOCABULARY)} (e.g. \"a large blue square moving up slowly on a white background\"); "
            "--model DIR for another model")
