"""Keeping objects on their track (`carry_track`, `vidgen.track`) on frames built by hand: a soft square the
"denoiser" redraws a fraction of a pixel off where the carry put it; the word binding and the displacement are
given exactly, as a trained field gives them for such frames."""

import pytest
import torch
from torch.nn import functional as F

from vidgen.fields import warp
from vidgen.track import MAX_SHIFT, TrackKeeper, region_shift

SIZE, SCALE, HALF = 32, 4, 4.0  # image px; image px per latent px; the square's half side


def square(x: float, y: float) -> torch.Tensor:
    """(1, 3, SIZE, SIZE) in [-1, 1]: a white square centred at (x, y) image px, its edges anti-aliased, on
    black."""
    grid = torch.arange(SIZE, dtype=torch.float64) + 0.5
    inside = HALF - torch.maximum((grid[None, :] - x).abs(), (grid[:, None] - y).abs())  # (rows, columns)
    cover = (inside + 0.5).clamp(0, 1)
    return (cover * 2 - 1).expand(1, 3, SIZE, SIZE).clone()


def centre(image: torch.Tensor) -> torch.Tensor:
    """(x, y) of the white mass."""
    mass = (image[0, 0] + 1) / 2
    grid = torch.arange(SIZE, dtype=mass.dtype) + 0.5
    return torch.stack([(mass.sum(0) * grid).sum(), (mass.sum(1) * grid).sum()]) / mass.sum()


def binding(image: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w): places the square covers bind word 0 outright; the rest lean to the still key (no word
    outright)."""
    covered = F.avg_pool2d((image[:, :1] > 0).to(image.dtype), SCALE) > 0.2
    one = torch.where(covered, 1.0, 0.4).to(image.dtype)
    return torch.cat([one, 1 - one], 1)


def moving(dx: float, dy: float) -> torch.Tensor:
    """A displacement that moves everything by (dx, dy) image px (warp reads at p − the step)."""
    return torch.tensor([-dx, -dy], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, SIZE, SIZE)


def test_region_shift_finds_a_sub_pixel_shift_and_nothing_where_there_are_no_edges():
    start = square(14.0, 15.0)
    everywhere = torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64)
    shift = region_shift(start, square(14.6, 14.7), everywhere)
    assert torch.allclose(shift, torch.tensor([0.6, -0.3], dtype=torch.float64), atol=0.02), shift
    assert torch.allclose(region_shift(start, start, everywhere), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    flat = torch.zeros_like(everywhere)
    flat[..., :4, :4] = 1  # a corner the square does not reach: no edge to tell a shift by
    assert region_shift(start, square(14.6, 14.7), flat) is None
    assert region_shift(start, square(14.0 + MAX_SHIFT + 1, 15.0), everywhere) is None


@pytest.mark.parametrize("mode, kept", [("across", (0.5, 0.0)), ("full", (0.0, 0.0)), ("none", (0.5, 0.4))])
def test_the_next_start_takes_the_denoisers_shift_out(mode, kept):
    """The square moves right 3 px a frame; the frame drawn from its start came out (0.5, 0.4) px off. The next
    start puts it where the carry meant it to be, plus `kept`: `across` keeps the shift along the motion only,
    `full` keeps none of it, `none` all of it."""
    keeper = TrackKeeper(binding, mode)
    first = square(10.0, 16.0)
    step = moving(3.0, 0.0)
    assert torch.equal(keeper(first, first, step), step)  # no start yet: nothing to take out
    start = warp(first, step, "bilinear")
    keeper.started(start)
    drawn = square(13.5, 16.4)  # the denoiser's frame: 0.5 px further on and 0.4 px down
    following = warp(drawn, keeper(drawn, drawn, step), "bilinear")
    want = torch.tensor([16.0 + kept[0], 16.0 + kept[1]], dtype=torch.float64)
    assert torch.allclose(centre(following), want, atol=0.05), (centre(following), want)
    assert [len(taken) for taken in keeper.shifts] == ([] if mode == "none" else [1])


def test_a_still_objects_whole_shift_is_noise():
    keeper = TrackKeeper(binding, "across")
    still = moving(0.0, 0.0)
    first = square(16.0, 16.0)
    keeper(first, first, still)
    keeper.started(first)
    drawn = square(16.3, 15.6)
    following = warp(drawn, keeper(drawn, drawn, still), "bilinear")
    assert torch.allclose(centre(following), torch.tensor([16.0, 16.0], dtype=torch.float64), atol=0.05)


@pytest.mark.parametrize("gap, taken", [(1, 0), (2, 2)])
def test_objects_touching_each_other_are_left_as_they_are(gap, taken):
    """Two still squares bound to two words: each shift is taken out when their regions lie a place apart or
    more; when the regions touch, neither is (over their regions one's shift cannot be told from the other's)."""
    weights = torch.zeros(1, 3, SIZE // SCALE, SIZE // SCALE, dtype=torch.float64)
    weights[:, 2] = 1.0  # the still key everywhere, but for the two regions
    weights[:, :, 3:5, 1:3] = torch.tensor([1.0, 0, 0], dtype=torch.float64).view(1, 3, 1, 1)
    weights[:, :, 3:5, 2 + gap:4 + gap] = torch.tensor([0, 1.0, 0], dtype=torch.float64).view(1, 3, 1, 1)
    keeper = TrackKeeper(lambda latents: weights, "across")
    left, right = 8.0, 8.0 + SCALE * gap + 4  # centres inside each region
    start = torch.maximum(square(left, 16.0), square(right, 16.0))
    still = moving(0.0, 0.0)
    keeper(start, start, still)
    keeper.started(start)
    drawn = torch.maximum(square(left + 0.3, 16.0), square(right, 16.4))
    keeper(drawn, drawn, still)
    assert len(keeper.shifts[-1]) == taken


def test_the_carry_turns_a_fast_object_it_would_move_past_the_edge_ahead_by_more_than_bounce_of_its_step():
    """Word 0's object (rows 0–3 of `test_redraw.steps`) at places 8–10 of 12: its pixels end at x = 43 of a 48-px
    frame whose edge lies at 47.5. A carry of 4 px (1 place) lands them 0.5 px short of the edge; one of 9 px 4.5
    px past it, half the step (BOUNCE); one of 9.6 px 5.1 px past it, 0.53 of the step. Word 1 stands at rows 5–7;
    places no word binds hold each word at 0.25 (`test_redraw.binding`)."""
    from vidgen.redraw import FAST
    from vidgen.track import BOUNCE, bounce

    from .test_redraw import binding, drawn, steps

    weights = binding((1, 8, 3, 3), (5, 2, 3, 3))
    carry = lambda *moves: bounce(drawn(weights), weights, steps(*moves)[None])[0]  # noqa: E731
    assert BOUNCE == 0.5 and FAST == 1.8
    for moves in (((1, 0), (0, 0)), ((2.25, 0), (0.5, 0)), ((-2.4, 0), (0.5, 0))):  # short, at BOUNCE, away
        assert torch.equal(carry(*moves), steps(*moves))
    turned, plain = carry((2.4, 0), (0.5, 0)), steps((2.4, 0), (0.5, 0))
    assert torch.allclose(turned[:, 1:4, 8:11], -plain[:, 1:4, 8:11])  # its places: reversed
    assert torch.equal(turned[:, 5:8, 2:5], plain[:, 5:8, 2:5])  # word 1's: as they were
    assert torch.allclose(turned[:, 0], 0.5 * plain[:, 0])  # a place no word takes: by word 0's weight there
    at_edge = binding((1, 9, 3, 3))  # its pixels end at 47: 1.6 px (0.4 places) lands them 1.1 px past, 0.69
    slow = steps((0.4, 0))
    assert torch.equal(bounce(drawn(at_edge), at_edge, slow[None])[0], slow)  # of the step, but under FAST
