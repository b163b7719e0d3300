"""The layered carry (`carry_space` layered) on frames built by hand: a small object moving right passes behind
a large still one and comes out; the word binding and the displacement are given exactly, as a trained field
gives them for such frames."""

import torch
from torch.nn import functional as F

from vidgen.fields import warp
from vidgen.layers import LayeredCarry, blobs, drawn_objects

SIZE, SCALE = 32, 4  # image px; image px per latent px
BIG = (slice(12, 24), slice(8, 24))  # the still object's rows and columns
STEP = 4  # the small object's step to the right, image px a frame


def frame(small_left: int | None) -> torch.Tensor:
    """(1, 3, SIZE, SIZE) in [-1, 1]: black, the large red object, and the small green one drawn under it."""
    image = -torch.ones(1, 3, SIZE, SIZE)
    if small_left is not None:
        image[0, 1, 16:20, small_left:small_left + 4] = 1.0
    image[0, 0, BIG[0], BIG[1]] = 1.0
    image[0, 1:, BIG[0], BIG[1]] = -1.0
    return image


def binding(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w): places mostly red bind word 0, mostly green word 1, the rest no word outright."""
    red = F.avg_pool2d((image[:, :1] > 0).float(), SCALE)
    green = F.avg_pool2d((image[:, 1:2] > 0).float(), SCALE)
    even = torch.full_like(red, 1 / 3)
    return torch.where(red > 0.2, torch.cat([torch.ones_like(red), 0 * red, 0 * red], 1),
                       torch.where(green > 0.2, torch.cat([0 * red, torch.ones_like(red), 0 * red], 1),
                                   even.expand(-1, 3, -1, -1)))


def field(image: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) latent px: the small object's places read one latent pixel to their left (move right)."""
    flow = torch.zeros(1, 2, SIZE // SCALE, SIZE // SCALE)
    flow[:, 0] = -(binding(image)[:, 1] == 1).float() * STEP / SCALE
    return flow


def plain(image: torch.Tensor) -> torch.Tensor:
    """The image-space carry (`VideoPipeline.warp_in_image`)."""
    return warp(image, F.interpolate(field(image), scale_factor=SCALE, mode="bilinear") * SCALE, "bilinear")


def carry(layered: LayeredCarry, image: torch.Tensor) -> torch.Tensor:
    # the carry binds the frame's latents; here the "latents" are the image itself, bound by `binding`
    return layered(image, plain(image), image, field(image))


def test_with_every_object_in_view_the_layered_carry_is_the_image_carry():
    layered = LayeredCarry(binding, SCALE)
    image = frame(0)
    assert torch.equal(carry(layered, image), plain(image))
    assert set(layered.looks) == {0, 1}


def test_an_object_that_passed_behind_another_comes_out_whole_where_its_step_puts_it():
    layered = LayeredCarry(binding, SCALE)
    carry(layered, frame(0))  # in full view: its look is kept
    carry(layered, frame(4))  # the step the carry was asked for; still in view
    start = None
    for _ in range(4):  # at columns 8, 12, 16, 20: behind the large object, no place binds it; its look moves on
        start = carry(layered, frame(None))
    # the start of the frame after: the small object at columns 24..27, out of the large one's right edge
    assert (start[0, 1, 16:20, 24:28] > 0.9).all() and (start[0, 0, 16:20, 24:28] < -0.9).all()
    assert (start[0, 0, BIG[0], BIG[1]] > 0.9).all()  # the large object stays in front, unchanged
    assert (plain(frame(None))[0, 1, 16:20, 24:28] < -0.9).all()  # the image carry has lost it


def test_a_look_unseen_for_more_than_hold_frames_is_dropped():
    from vidgen.layers import HOLD
    layered = LayeredCarry(binding, SCALE)
    carry(layered, frame(0))
    for _ in range(HOLD + 1):
        carry(layered, frame(None))
    assert set(layered.looks) == {0}


def two(green_left: int | None, red_left: int | None) -> torch.Tensor:
    """(1, 3, SIZE, SIZE): black, a small green object and a small red one on rows 16..19, red drawn last."""
    image = -torch.ones(1, 3, SIZE, SIZE)
    if green_left is not None:
        image[0, 1, 16:20, green_left:green_left + 4] = 1.0
    if red_left is not None:
        image[0, :, 16:20, red_left:red_left + 4] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return image


def towards(image: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) latent px: green places move right by STEP, red ones left (warp reads at p + flow)."""
    bound = binding(image)
    flow = torch.zeros(1, 2, SIZE // SCALE, SIZE // SCALE)
    flow[:, 0] = ((bound[:, 0] == 1).float() - (bound[:, 1] == 1).float()) * STEP / SCALE
    return flow


def test_objects_that_meet_are_laid_from_their_looks_each_at_its_own_step():
    """Two objects seen apart move towards each other; the frame drawn where they meet holds one blob (the red
    one over the green one, whose word no place binds). The image carry moves that blob as one object and loses
    the green one; the layered carry with `meet` lays each object's look where its own step puts it."""
    layered = LayeredCarry(binding, SCALE, meet=True)

    def run():
        for image in (two(4, 20), two(8, 16), two(12, 12)):  # 4 px apart, then drawn as one blob where they meet
            plain = warp(image, F.interpolate(towards(image), scale_factor=SCALE, mode="bilinear") * SCALE,
                         "bilinear")
            out = layered(image, plain, image, towards(image))
        return out, plain

    out, plain = run()
    green, red, black = out[0, :, 16:20, 16:20], out[0, :, 16:20, 8:12], out[0, :, 16:20, 12:16]
    assert (green[1] > 0.9).all() and (green[0] < -0.9).all()
    assert (red[0] > 0.9).all() and (red[1] < -0.9).all()
    assert (black < -0.9).all()
    assert (plain[0, 1] < -0.9).all()  # the image carry has no green pixel left


def test_drawn_objects_counts_separate_blobs_of_ink_and_leaves_out_specks():
    """`drawn_objects`: a frame with the large red object and, apart from it, a green one counts 2, even when
    one word binds both (a copy binds its original's word); a 2 × 2 speck is smaller than a latent place and is
    no object; an object touching another is one blob with it; a frame every place of which some word binds
    has no background to tell ink by (None)."""
    apart = frame(0)
    assert drawn_objects(apart, binding(apart)[0, :2], SCALE) == 2
    one_word = binding(apart)[0, :2].amax(0, keepdim=True)  # word 0 takes both objects' places
    assert drawn_objects(apart, one_word, SCALE) == 2
    speck = apart.clone()
    speck[0, :, 2:4, 28:30] = 1.0
    assert drawn_objects(speck, binding(speck)[0, :2], SCALE) == 2
    assert blobs(torch.ones(1, 1, 2, 2, dtype=torch.bool)) == 1 and blobs(torch.zeros(1, 1, 4, 4, dtype=torch.bool)) == 0
    touching = frame(4)  # the green object's right edge meets the red one's left edge at column 8
    assert drawn_objects(touching, binding(touching)[0, :2], SCALE) == 1
    assert drawn_objects(apart, torch.ones(1, SIZE // SCALE, SIZE // SCALE), SCALE) is None
