"""Training checkpoints, written atomically and loaded from safetensors + JSON only (no pickle).

A checkpoint is a folder `step-XXXXXXX/` holding the adapter (config.json + safetensors), the EMA weights,
the optimizer state (tensors in safetensors, the rest in JSON), the step, and the resolved training
configuration. It is written under a temporary name and renamed into place, and `latest` names the newest
complete one, so an interrupted write never leaves a checkpoint that looks whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a fresh temporary folder beside `final`; on success it replaces `final` (a reader sees the old
    folder or the new one, never a half-written one); on failure it is removed and `final` is untouched."""
    tmp = final.with_name(f".tmp-{final.name}")
    old = final.with_name(f".old-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def optimizer_to_files(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    state = optimizer.state_dict()
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        meta["state"][str(idx)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.contiguous()
            else:
                meta["state"][str(idx)][key] = value
    save_file(tensors, folder / "optimizer.safetensors")
    (folder / "optimizer.json").write_text(json.dumps(meta))


def optimizer_from_files(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    meta = json.loads((folder / "optimizer.json").read_text())
    state = {int(idx): dict(entry) for idx, entry in meta["state"].items()}
    for name, tensor in load_file(folder / "optimizer.safetensors").items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(root: Path, step: int, adapter, optimizer, ema: dict | None, config: dict) -> Path:
    """Write `root/step-XXXXXXX` atomically and point `root/latest` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    with atomic_dir(final) as tmp:
        adapter.save_pretrained(tmp / "adapter")
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.items()}, tmp / "ema.safetensors")
        optimizer_to_files(optimizer, tmp)
        (tmp / "trainer.json").write_text(json.dumps({"step": step}))
        (tmp / "train_config.json").write_text(json.dumps(config, indent=2))
    latest = root / ".latest.tmp"
    latest.write_text(final.name)
    os.replace(latest, root / "latest")
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_checkpoint(path: Path, adapter, optimizer) -> tuple[int, dict | None, dict]:
    """Restore adapter weights and optimizer state in place; return (step, ema weights or None, config)."""
    weights = load_file(next((path / "adapter").glob("*.safetensors")))
    adapter.load_state_dict(weights, strict=True)
    optimizer_from_files(optimizer, path)
    ema_file = path / "ema.safetensors"
    ema = load_file(ema_file) if ema_file.is_file() else None
    step = json.loads((path / "trainer.json").read_text())["step"]
    return step, ema, json.loads((path / "train_config.json").read_text())


def save_training_state(folder: Path, model: torch.nn.Module, optimizer, meta: dict,
                        ema: dict | None = None) -> None:
    """Atomically replace `folder` with the model's weights, the optimizer state, `meta` (JSON) and, when given,
    the EMA weights."""
    with atomic_dir(folder) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.items()}, tmp / "ema.safetensors")
        optimizer_to_files(optimizer, tmp)
        (tmp / "trainer.json").write_text(json.dumps(meta))


def load_training_state(folder: Path, model: torch.nn.Module, optimizer) -> tuple[dict, dict | None] | None:
    """Restore what `save_training_state` wrote, in place; → (meta, EMA weights or None), or None when `folder`
    holds no state."""
    if not (folder / "trainer.json").is_file():
        return None
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    optimizer_from_files(optimizer, folder)
    ema = load_file(folder / "ema.safetensors") if (folder / "ema.safetensors").is_file() else None
    return json.loads((folder / "trainer.json").read_text()), ema
