"""The training loop shared by the demo model's parts: resumable, seeded per step, checkpointed atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import load_training_state, save_training_state


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: Path, steps: int,
        loss_at: Callable[[int], tuple[torch.Tensor, float | dict]], lr_at: Callable[[int], float],
        save_every: int = 250, clip: float | None = None, ema_decay: float = 0.0,
        stop_at: int | None = None) -> tuple[list[dict], dict | None]:
    """Run optimizer steps until `steps` (or until `stop_at`, checkpointed there, on the same `lr_at` schedule:
    run again with a later one to go on), resuming from `state` if it holds a checkpoint.

    `loss_at(step)` draws that step's data from a generator seeded by the step, so a resumed run repeats what an
    uninterrupted one would have done; it returns (loss to minimise, number or dict of numbers to log). With
    `ema_decay` > 0 an exponential moving average of the weights is kept (and checkpointed); → (the log, the EMA
    weights or None). A state saved without an EMA starts its EMA at the saved weights."""
    saved = load_training_state(state, model, optimizer)
    step, log, ema = 0, [], None
    if saved:
        (meta, ema), step = saved, saved[0]["step"]
        log = meta["log"]
        print(f"resumed from {state} at step {step}")
    if ema_decay > 0 and ema is None:
        ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    elif ema_decay == 0:
        ema = None
    model.train()
    start, end = time.time(), steps if stop_at is None else min(stop_at, steps)
    while step < end:
        loss, shown = loss_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    ema[k].mul_(ema_decay).add_(v.float(), alpha=1 - ema_decay)
        step += 1
        if step % 50 == 0 or step == end:
            shown = shown if isinstance(shown, dict) else {"loss": shown}
            log.append({"step": step, **{k: round(v, 5) for k, v in shown.items()},
                        "seconds": round(time.time() - start)})
            print(log[-1], flush=True)
        if step % save_every == 0 or step == end:
            save_training_state(state, model, optimizer, {"step": step, "log": log}, ema)
    return log, ema
