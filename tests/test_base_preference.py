"""The base model's preference pairs and their Diffusion-DPO loss (`vidgen.base.preference`)."""

import math

import numpy as np
import torch

from vidgen.base.preference import dpo_loss, make_pair
from vidgen.data.shapes import BACKGROUNDS, COLOURS
from vidgen.eval.scorer import blobs, colour_masks


def blob_counts(image: np.ndarray, background: str) -> dict[str, int]:
    """Objects of each colour in one (S, S, 3) frame, as the shapes scorer counts them."""
    masks = colour_masks(image[None], np.array(BACKGROUNDS[background], np.float32), list(COLOURS))
    return {c: n for c in COLOURS if (n := blobs(masks[c][0], image.shape[0]))}


def test_each_flaw_is_the_mistake_it_names():
    """Over 60 pairs the scorer counts in the winner each caption colour once, and in the loser exactly the
    mistake its flaw names; a pair is the same for the same seed."""
    seen = set()
    for seed in range(60):
        winner, loser, scene, flaw = make_pair(seed, pair_share=0.75)
        seen.add((len(scene.objects), flaw))
        colours = [o.colour for o in scene.objects]
        right, got = blob_counts(winner, scene.background), blob_counts(loser, scene.background)
        assert right == {c: 1 for c in colours}, (seed, right)
        if flaw == "copy":  # one caption colour twice, apart
            assert set(got) == set(colours) and sum(got.values()) == len(colours) + 1, (seed, got)
        elif flaw == "missing":
            assert len(got) == 1 and set(got) < set(colours) and sum(got.values()) == 1, (seed, got)
        elif flaw == "leak":
            assert len(got) == 1 and set(got) < set(colours) and sum(got.values()) == 2, (seed, got)
        else:  # swap: the same colours, on the other shapes
            assert flaw == "swap" and got == right and not np.array_equal(winner, loser)
    assert {(1, "copy"), (2, "copy"), (2, "missing"), (2, "leak"), (2, "swap")} <= seen
    again = make_pair(7, pair_share=0.75)
    assert all(np.array_equal(a, b) for a, b in zip(again[:2], make_pair(7, pair_share=0.75)[:2]))


class Denoiser(torch.nn.Module):
    """A stand-in for the text-to-image model's (x_t, t, ids) → ε: one convolution."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x_t, t, ids):
        return self.conv(x_t)


def test_dpo_loss_starts_at_log_2_and_training_prefers_the_winner():
    """Equal to its reference, the model is indifferent (loss log 2, no pair ahead); gradient steps on the loss
    lower the model's error on the winners relative to the losers, which the reference's does not change."""
    torch.manual_seed(0)
    model = Denoiser()
    reference = Denoiser()
    reference.load_state_dict(model.state_dict())
    kept = {k: v.clone() for k, v in reference.state_dict().items()}
    abar = torch.linspace(0.99, 0.01, 1000)
    x_w, x_l = torch.randn(8, 4, 6, 6), torch.randn(8, 4, 6, 6) * 3
    t, noise, ids = torch.randint(1000, (8,)), torch.randn(8, 4, 6, 6), torch.zeros(8, 4, dtype=torch.long)
    loss, ahead = dpo_loss(model, reference, x_w, x_l, t, noise, abar, ids, beta=50.0)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6) and ahead == 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        loss, ahead = dpo_loss(model, reference, x_w, x_l, t, noise, abar, ids, beta=50.0)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * math.log(2) and ahead == 1.0
    assert all(torch.equal(p, q) for p, q in zip(reference.state_dict().values(), kept.values()))


def test_the_anchor_counts_a_winner_made_worse_against_its_pair():
    """DPO-Positive's term, checked against the formula by hand: a model whose error on the winners is above the
    reference's pays λ times that rise inside the sigmoid, on top of plain DPO; where it is below, nothing."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, reference = Denoiser(), Denoiser()
    with torch.no_grad():  # a reference near the model, so that its errors are sometimes above, sometimes below
        for p, q in zip(reference.parameters(), model.parameters()):
            p.copy_(q + 0.05 * torch.randn_like(q))
    abar = torch.linspace(0.99, 0.01, 1000)
    x_w, x_l, noise = torch.randn(6, 4, 5, 5), torch.randn(6, 4, 5, 5), torch.randn(6, 4, 5, 5)
    t, ids = torch.randint(1000, (6,)), torch.zeros(6, 3, dtype=torch.long)

    def error(net, x0):
        a = abar[t].view(-1, 1, 1, 1)
        return ((net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, ids) - noise) ** 2).mean(dim=(1, 2, 3))

    with torch.no_grad():
        w = error(model, x_w) - error(reference, x_w)
        d = w - (error(model, x_l) - error(reference, x_l))
        plain, anchored = dpo_loss(model, reference, x_w, x_l, t, noise, abar, ids, 10.0)[0], \
            dpo_loss(model, reference, x_w, x_l, t, noise, abar, ids, 10.0, anchor=3.0)[0]
    assert (w > 0).any() and (w < 0).any()  # both cases are in the batch
    assert torch.allclose(plain, -F.logsigmoid(-5.0 * d).mean(), atol=1e-6)
    assert torch.allclose(anchored, -F.logsigmoid(-5.0 * (d + 3.0 * w.clamp(min=0))).mean(), atol=1e-6)
    assert anchored > plain


def test_base_training_command_line_rejects_bad_input_in_one_line(monkeypatch, capsys, tmp_path):
    """A missing VAE folder, a negative anchor, pairs without a model to measure against: each exits 2 with one
    line that names the value and what is accepted, before anything is loaded."""
    import pytest

    from vidgen.base.text2image import main

    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text("{}")
    cases = {("--vae", str(tmp_path / "none")): "--vae: got", ("--vae", str(vae), "--anchor", "-1"): "≥ 0",
             ("--vae", str(vae), "--preferences", "8"): "--preferences needs --init-model"}
    for flags, expected in cases.items():
        monkeypatch.setattr("sys.argv", ["text2image", "--out", str(tmp_path / "out"), *flags])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and expected in err[-1] and "Traceback" not in "\n".join(err), flags
