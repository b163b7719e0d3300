"""The adapter on a real (tiny) diffusers UNet: identity at initialisation, attach/detach, save/load, freezing."""

import pytest
import torch

from vidgen import VideoAdapter, VideoDenoiser, VidgenError
from vidgen.guidance import Guidance, frame_model
from vidgen.pipeline import make_scheduler
from vidgen.sampling import FrameContext, sample_autoregressive

from .conftest import perturb


@pytest.fixture()
def unet(pipe):
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel.from_config(pipe.denoiser.unet.config).requires_grad_(False)


def inputs(seed=0, b=2, k=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, 16, 16, generator=g)
    text = torch.randn(b, 16, 32, generator=g)
    ctx = FrameContext.make(torch.randn(b, k, 4, 16, 16, generator=g), [0, 2, 3], 4, 0.0)
    return x, torch.tensor([500] * b), text, ctx


def test_untrained_adapter_is_bit_identical_and_detach_restores(unet):
    x, t, text, ctx = inputs()
    before = unet(x, t, encoder_hidden_states=text).sample
    stock = dict(unet.attn_processors)
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet))
    assert torch.equal(denoiser.predict(x, t, text, denoiser.condition(*ctx.as_args(), text)), before)
    perturb(denoiser.adapter)
    assert not torch.allclose(denoiser.predict(x, t, text, denoiser.condition(*ctx.as_args(), text)), before)
    denoiser.adapter.detach()
    assert unet.attn_processors == stock
    assert torch.equal(unet(x, t, encoder_hidden_states=text).sample, before)


@pytest.mark.parametrize("paths", [dict(token_path=True, spatial_path=False), dict(token_path=False),
                                   dict(), dict(frame_differences=True, spatial_text=True, spatial_flow=True)],
                         ids=["token-only", "spatial-only", "both", "both-with-differences-text-and-flow"])
def test_each_path_starts_at_identity_and_changes_the_output(unet, paths):
    x, t, text, ctx = inputs()
    before = unet(x, t, encoder_hidden_states=text).sample
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet, **paths))
    out = denoiser.predict(x, t, text, denoiser.condition(*ctx.as_args(), text))
    assert torch.equal(out, before)
    perturb(denoiser.adapter)
    out = denoiser.predict(x, t, text, denoiser.condition(*ctx.as_args(), text))
    assert (out - before).abs().max() > 1e-4


def test_spatial_text_words_read_the_appended_word_embeddings_and_the_unet_never_sees_them(unet):
    x, t, text, ctx = inputs()
    words = torch.randn(text.shape, generator=torch.Generator().manual_seed(9))
    before = unet(x, t, encoder_hidden_states=text).sample
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet, spatial_text=True, spatial_text_words=True))
    try:
        full = torch.cat([text, words], dim=-1)
        assert torch.equal(denoiser.predict(x, t, full, denoiser.condition(*ctx.as_args(), full)), before)
        perturb(denoiser.adapter)
        with torch.no_grad():
            denoiser.adapter.spatial.text_film.weight.normal_(0, 0.5)
        out = denoiser.predict(x, t, full, denoiser.condition(*ctx.as_args(), full))
        other_words = torch.cat([text, torch.randn(words.shape, generator=torch.Generator().manual_seed(8))], -1)
        changed = denoiser.predict(x, t, other_words, denoiser.condition(*ctx.as_args(), other_words))
        assert (changed - out).abs().max() > 1e-3
        with pytest.raises(VidgenError, match="text: got width 32.*expects width 64"):
            denoiser.condition(*ctx.as_args(), text)
    finally:
        denoiser.adapter.detach()
    with pytest.raises(VidgenError, match="spatial_text_words: got True without spatial_text"):
        VideoAdapter.for_unet(unet, spatial_text_words=True)


def test_warp_shifts_by_whole_pixels_exactly_and_by_fractions_linearly():
    from vidgen.fields import warp
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(2, 2, 8, 8)
    assert torch.allclose(warp(x, flow), x, atol=1e-6)
    flow[:, 0] = 1.0  # sample one pixel to the right: the content moves left
    assert torch.allclose(warp(x, flow)[..., :-1], x[..., 1:], atol=1e-5)
    assert torch.allclose(warp(x, flow)[..., -1], x[..., -1], atol=1e-5)  # edges repeat
    flow[:, 0], flow[:, 1] = 0.0, 0.25
    assert torch.allclose(warp(x, flow)[..., :-1, :], 0.75 * x[..., :-1, :] + 0.25 * x[..., 1:, :], atol=1e-5)


def test_spatial_flow_starts_still_and_its_displacement_moves_the_residuals():
    from vidgen.context import SpatialEncoder
    enc, plain = SpatialEncoder(4, 8, [(8, 1)], 4, flow=True), SpatialEncoder(4, 8, [(8, 1)], 4)
    torch.nn.init.normal_(enc.heads[0].weight)
    plain.load_state_dict(enc.state_dict(), strict=False)  # the same weights, no flow head
    ctx = inputs()[3]
    still = enc(*ctx.as_args())[0][0]
    assert torch.allclose(still, plain(*ctx.as_args())[0][0], atol=1e-5)
    with torch.no_grad():
        enc.flow[-1].bias[0] = 1.0  # one latent pixel along x everywhere
    assert (enc(*ctx.as_args())[0][0] - still).abs().max() > 1e-3


def test_edge_map_tells_each_places_distance_to_each_frame_edge_up_to_the_reach():
    from vidgen.fields import WALL_REACH, edge_map
    edges = edge_map(6, 10)  # (left, right, top, bottom); distances from place centres, in latent px
    assert edges.shape == (4, 6, 10) and WALL_REACH == 4.0
    assert torch.allclose(edges[0, 2, :5], torch.tensor([0.875, 0.625, 0.375, 0.125, 0.0]))
    assert torch.equal(edges[1], edges[0].flip(1)) and torch.equal(edges[3], edges[2].flip(0))
    assert torch.allclose(edges[2:, :, 7].sum(0), torch.tensor([0.875, 0.625, 0.5, 0.5, 0.625, 0.875]))
    assert edges[:2, :, 4:6].sum() == 0  # the middle columns are beyond the reach of the left and right edges


def test_flow_walls_start_silent_and_then_make_the_field_depend_on_where_a_place_is():
    from vidgen.context import SpatialEncoder
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, flow=True, walls=True)
    plain = SpatialEncoder(4, 8, [(8, 1)], 4, flow=True)
    torch.nn.init.normal_(enc.flow[-1].weight, std=0.1)
    plain.load_state_dict(enc.state_dict(), strict=False)  # the same weights, no walls
    args = FrameContext.make(torch.zeros(1, 2, 4, 16, 16), [0, 1], 2, 0.0).as_args()
    assert torch.equal(enc(*args)[1], plain(*args)[1])
    with torch.no_grad():
        torch.nn.init.normal_(enc.walls.weight)
    field = enc(*args)[1]  # a blank context: the same everywhere, but for the walls
    assert (field[..., 6:10, 6:10] - field[..., 8:9, 8:9]).abs().max() < 1e-6  # far from every edge: alike
    assert (field[..., 0, 8] - field[..., 8, 8]).abs().max() > 1e-3  # at the top edge: not


def test_flow_depth_starts_as_the_head_it_deepens_and_then_changes_the_field():
    from vidgen.context import SpatialEncoder
    deep = SpatialEncoder(4, 8, [(8, 1)], 4, flow=True, flow_depth=2)
    plain = SpatialEncoder(4, 8, [(8, 1)], 4, flow=True)
    torch.nn.init.normal_(deep.flow[-1].weight, std=0.1)
    extra = plain.load_state_dict(deep.state_dict(), strict=False).unexpected_keys  # the same weights, no blocks
    assert extra and all(k.startswith("flow_blocks.") for k in extra)
    args = FrameContext.make(torch.randn(1, 2, 4, 16, 16), [0, 1], 2, 0.0).as_args()
    assert torch.equal(deep(*args)[1], plain(*args)[1])
    with torch.no_grad():
        torch.nn.init.normal_(deep.flow_blocks[1].body[-1].weight, std=0.1)
    assert (deep(*args)[1] - plain(*args)[1]).abs().max() > 1e-4


def test_flow_depth_needs_the_field_and_a_count_of_zero_or_more():
    from vidgen.adapter import check_options
    check_options(spatial_flow=True, flow_depth=2)
    for bad in (dict(spatial_flow=True, flow_depth=-1), dict(spatial_flow=False, flow_depth=1)):
        with pytest.raises(VidgenError, match="flow_depth"):
            check_options(**bad)


def test_motion_field_places_the_captions_motions_reverses_them_and_never_exceeds_them():
    from vidgen.fields import SIGN_BIAS, motion_field
    motions = torch.tensor([[[0.5, 0.0], [0.0, -0.25]]])  # (b, M = 2, 2)
    head = torch.zeros(1, 4, 3, 4)
    head[0, 0, 0] = 30.0  # row 0: motion 1
    head[0, 1, 1] = 30.0  # row 1: motion 2
    head[0, 0, 2] = 30.0  # row 2: motion 1, run backwards (a bounce)
    head[0, 2, 2] = -30.0
    field = motion_field(head, motions)
    forward = torch.tanh(torch.tensor(SIGN_BIAS))
    for row, want in [(0, forward * motions[0, 0]), (1, forward * motions[0, 1]), (2, -motions[0, 0])]:
        assert torch.allclose(field[0, :, row], want[:, None].expand(2, 4), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    field = motion_field(torch.randn(8, 4, 6, 6, generator=g) * 10, motions.expand(8, 2, 2))
    assert field.norm(dim=1).max() <= motions.norm(dim=-1).max() + 1e-6  # no place moves more than the caption


def test_spatial_flow_with_motions_takes_its_size_from_the_caption_alone():
    from vidgen.context import SpatialEncoder
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6, flow=True, motions=2)
    ctx = inputs()[3]
    text = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(1))
    start = enc(*ctx.as_args(), text=text)[1]
    assert 0 < start.abs().max() < 0.05  # nearly still, and the two motions differ (they must, to part)
    with torch.no_grad():
        enc.text_flow[-1].weight.zero_()
        enc.text_flow[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # motion 1: one latent px along x
        torch.nn.init.normal_(enc.flow[-1].weight)
    for scale in (1.0, 100.0):  # whatever the context, no place moves more than the caption says
        flow = enc(ctx.frames * scale, *ctx.as_args()[1:], text=text)[1]
        assert flow.abs().max() <= 1.0 and flow[:, 1].abs().max() == 0 and flow[:, 0].abs().max() > 0.01
    with pytest.raises(ValueError, match="motions"):
        SpatialEncoder(4, 8, [(8, 1)], 4, flow=True, motions=2)


def test_word_field_binds_each_place_to_its_words_and_the_free_field_only_signs_it():
    """Two objects in one caption: each place takes the displacement of the words its own features match, run
    backwards exactly where the free field points the other way; whatever the map, no place moves farther than
    the farthest word's displacement."""
    from vidgen.context import SpatialEncoder
    from vidgen.fields import WORD_WINDOW, WordField, signed_like
    torch.manual_seed(0)
    field = WordField(4, 4)
    assert field(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 4)).abs().max() == 0  # untrained: still
    text = torch.eye(4)[None, :3] * 3  # three "words", each its own direction of the feature space
    normed = torch.nn.functional.layer_norm(text, (4,), eps=1e-6)
    with torch.no_grad():
        field.words.weight.zero_()
        field.words.weight[:, :, WORD_WINDOW // 2] = torch.eye(4)  # a word reads itself alone
        field.words.bias.zero_()
        field.key.weight.zero_()
        field.key.weight[:4] = 100 * torch.eye(4)
        field.query.weight.zero_()
        field.query.weight[:4, :, 0, 0] = torch.eye(4)
        torch.nn.init.normal_(field.motion[-1].weight)
    pooled = torch.zeros(1, 4, 2, 3)
    pooled[0, :, 0] = normed[0, 0][:, None]  # row 0 shows what word 0 describes, row 1 word 1
    pooled[0, :, 1] = normed[0, 1][:, None]
    got = field(pooled, text)
    offered = field.motion(normed)[0]  # each word's displacement
    assert offered.norm(dim=-1).min() > 0.1 and (offered[0] - offered[1]).norm() > 0.1
    assert torch.allclose(got[0, :, 0], offered[0][:, None].expand(2, 3), atol=1e-5)
    assert torch.allclose(got[0, :, 1], offered[1][:, None].expand(2, 3), atol=1e-5)
    guide = got.clone()
    guide[0, :, 1, 2] = -0.01 * offered[1]  # the context says: this place now runs backwards (a bounce)
    signed = signed_like(got, guide)
    assert torch.allclose(signed[0, :, 1, 2], -offered[1]) and torch.equal(signed[0, :, :, :2], got[0, :, :, :2])
    wild = field(torch.randn(8, 4, 5, 5) * 50, text.expand(8, 3, 4))
    assert wild.norm(dim=1).max() <= offered.norm(dim=-1).max() + 1e-5
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6, flow=True, words=True)
    _, flow, guide, _ = enc(*inputs()[3].as_args(), text=torch.randn(2, 5, 6))
    assert flow.abs().max() == 0 and guide.abs().max() == 0  # untrained: no displacement
    for bad in (dict(flow=False, words=True), dict(flow=True, words=True, motions=2)):
        with pytest.raises(ValueError, match="words"):
            SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6, **bad)


def test_appearance_binding_reads_the_latest_frame_alone_and_offers_a_still_key():
    """word_binding "appearance": each place's query reads only the context frame just before the target, so the
    word field does not change with how the frames before it moved (frame differences, the anchor), and it does
    with what the latest frame shows; a place whose query matches the still key takes no displacement."""
    from vidgen.context import SpatialEncoder
    from vidgen.fields import WordField, latest_frame
    torch.manual_seed(0)
    frames = torch.randn(2, 3, 4, 4, 4)
    offsets = torch.tensor([[-4, -1, -2], [-3, -2, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    got = latest_frame(frames, offsets, mask)
    assert torch.equal(got[0], frames[0, 1]) and torch.equal(got[1], frames[1, 1])  # nearest before; not a pad
    assert latest_frame(frames, offsets, torch.zeros_like(mask)).abs().max() == 0  # no context: nothing
    assert latest_frame(frames[:, :0], offsets[:, :0], mask[:, :0]).shape == (2, 4, 4, 4)  # nor any slot
    assert torch.equal(latest_frame(frames, torch.tensor([[2, 1, 3]] * 2), mask.new_ones(2, 3)), frames[:, 1])

    enc = SpatialEncoder(4, 8, [(8, 1)], 4, differences=True, text_dim=6, flow=True, words=True,
                         word_binding="appearance")
    torch.nn.init.normal_(enc.word_field.motion[-1].weight)  # a word field that moves; the free field is still
    ctx, text = inputs()[3], torch.randn(2, 5, 6)
    flow = enc(*ctx.as_args(), text=text)[1]
    assert flow.abs().max() > 0.01
    older = ctx.frames.clone()
    older[:, :2] = torch.randn_like(older[:, :2])  # the anchor and frame 2 change, the latest (frame 3) does not
    assert torch.allclose(enc(older, *ctx.as_args()[1:], text=text)[1], flow, atol=1e-6)
    latest = ctx.frames.clone()
    latest[:, 2] = torch.randn_like(latest[:, 2])
    assert not torch.allclose(enc(latest, *ctx.as_args()[1:], text=text)[1], flow, atol=1e-3)

    field = WordField(8, 6, "appearance")
    torch.nn.init.normal_(field.motion[-1].weight)
    with torch.no_grad():
        field.query[-1].weight.zero_()
        field.query[-1].bias.copy_(torch.randn(32) * 100)  # every place asks for the same key...
        field.still_key.copy_(field.query[-1].bias)  # ...which is the still key
    assert field(torch.randn(2, 4, 4, 4), text).abs().max() < 1e-6


def test_null_rows_are_warped_by_the_free_field_or_an_unturned_word_field_and_the_others_as_before():
    """`NullField` rows (guidance's caption-free branches): with no words their displacement is the free field
    itself; with words, the word field those words give, unsigned (no turn); the other rows keep their own;
    an encoder without words refuses them."""
    from vidgen.context import NullField, SpatialEncoder
    from vidgen.fields import latest_frame
    torch.manual_seed(0)
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, differences=True, text_dim=6, flow=True, words=True,
                         word_binding="appearance")
    with torch.no_grad():  # the zero-initialised parts (word and free fields, output heads) made to act
        for param in enc.parameters():
            if param.dim() > 1 and param.abs().max() == 0:
                param.normal_(std=0.1)
    ctx, text, caption = inputs()[3], torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    residuals, flow, guide, _ = enc(*ctx.as_args(), text=text)
    rows = torch.tensor([True, False])
    mixed, mixed_flow, mixed_guide, _ = enc(*ctx.as_args(), text=text, null=NullField(rows))
    assert torch.equal(mixed_flow[0], guide[0]) and torch.equal(mixed_flow[1], flow[1])
    assert torch.equal(mixed_guide, guide) and not torch.allclose(flow[0], guide[0], atol=1e-3)
    assert torch.equal(mixed[0][1], residuals[0][1]) and not torch.allclose(mixed[0][0], residuals[0][0])
    unturned = enc(*ctx.as_args(), text=text, null=NullField(rows, caption))[1]
    latest = latest_frame(ctx.frames, ctx.offsets, ctx.mask)
    assert torch.allclose(unturned[0], enc.word_field(latest, caption)[0], atol=1e-6)
    assert torch.equal(unturned[1], flow[1]) and not torch.allclose(unturned[0], flow[0], atol=1e-3)
    plain = SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6, flow=True)
    with pytest.raises(ValueError, match="words"):
        plain(*ctx.as_args(), text=text, null=NullField(rows))


def test_appearance_binding_turns_each_object_as_a_whole_and_only_once_the_context_moves():
    """Object signs: places bound to the same words turn together when the guide, summed over them, points back
    (even where it locally agrees); another object's places keep their direction; a word's own displacement
    may point anywhere (only the sum per place is a motion); a sample whose context shows no motion
    (may_reverse False) turns nothing."""
    from vidgen.fields import WordField
    weights = torch.zeros(2, 4, 1, 4)
    weights[:, 0, 0, :2] = weights[:, 1, 0, :2] = 0.5  # object A (places 0, 1): words 0 and 1 together
    weights[:, 2, 0, 2:] = 1  # object B (places 2, 3): word 2; the still key (3) nobody
    motions = torch.tensor([[3.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).expand(2, 4, 2)  # A: +0.5 in x
    guide = torch.zeros(2, 2, 1, 4)
    guide[:, 0, 0, 0], guide[:, 0, 0, 1] = -3.0, 0.5  # A's places: back on the whole, forward at one
    guide[:, 1, 0, 2], guide[:, 1, 0, 3] = 0.2, -0.1  # B's: about still, forward on the whole
    field = WordField(8, 6, "appearance")
    field.bind = lambda source, text: (weights, motions)
    got, turn = field.signed(None, None, guide, may_reverse=torch.tensor([True, False]))
    assert got[0, 0, 0].tolist() == [-0.5, -0.5, 0, 0] and got[0, 1, 0].tolist() == [0, 0, 1, 1]
    assert got[1, 0, 0].tolist() == [0.5, 0.5, 0, 0] and got[1, 1, 0].tolist() == [0, 0, 1, 1]
    assert torch.equal(field(None, None), got[1:].expand(2, -1, -1, -1))  # no guide: the caption's way
    # the read that decided it, in steps of the field: A's guide runs (−3 · 0.5 + 0.5 · 0.5) / 0.5 = −2.5 steps
    # along it (both places alike), B's (0.2 + −0.1) / 2 = +0.05; it is read whether or not the sample may turn
    assert torch.allclose(turn[:, 0], torch.tensor([-2.5, -2.5, 0.05, 0.05]).expand(2, 4))


def test_partial_turn_moves_an_object_back_by_as_much_as_the_guide_says_and_never_more_than_a_step():
    from vidgen.fields import object_signs
    weights = torch.zeros(3, 2, 1, 2)
    weights[:, 0] = 1  # one object over both places, bound to word 0
    field = torch.zeros(3, 2, 1, 2)
    field[:, 0] = 2.0  # its step: +2 px in x
    guide = torch.zeros(3, 2, 1, 2)
    guide[0, 0], guide[1, 0], guide[2, 0] = -1.0, -5.0, 0.3  # half a step back, more than a step back, forward
    assert object_signs(field, weights, guide).flatten(1).tolist() == [[-1, -1], [-1, -1], [1, 1]]
    assert object_signs(field, weights, guide, partial=True).flatten(1).tolist() == [[-0.5, -0.5], [-1, -1], [1, 1]]
    with pytest.raises(VidgenError, match="flow_partial_turn"):
        VideoAdapter(4, 32, [], [[8, 1]], spatial_flow=True, spatial_text=True, flow_words=True,
                     flow_partial_turn=True)  # word binding "map" turns per place, not per object


def test_peak_read_turns_an_object_where_its_centre_points_back_though_its_mean_does_not():
    from vidgen.fields import object_signs
    weights = torch.zeros(2, 3, 1, 5)
    weights[:, 0, 0, :3] = torch.tensor([0.5, 1.0, 0.5])  # object A over places 0-2, centre (peak) at place 1
    weights[:, 1, 0, 3] = 1  # object B at place 3
    weights[:, 2, 0, :] = torch.tensor([0.5, 0.0, 0.5, 0.0, 1.0])  # the still key, peak on the background (4)
    field = torch.zeros(2, 2, 1, 5)
    field[:, 0, 0, :4] = torch.tensor([2.0, 2.0, 2.0, -1.0])  # A's step +2 px in x, B's −1 px, none at place 4
    guide = torch.zeros(2, 2, 1, 5)
    guide[0, 0, 0, :4] = torch.tensor([3.0, -1.0, 3.0, -1.0])  # A: back at its centre only; B: with its field
    guide[1, 0, 0, :4] = torch.tensor([-3.0, 0.5, -3.0, 1.0])  # A: forward at its centre, back on the whole; B: back
    assert object_signs(field, weights, guide).flatten(1).tolist() == [[1] * 5, [-1] * 5]
    assert object_signs(field, weights, guide, read="peak").flatten(1).tolist() == [[-1, -1, -1, 1, 1],
                                                                                     [1, 1, 1, -1, 1]]
    # a margin counts at the peak as over the mean: A's centre is back by half its step
    assert object_signs(field, weights, guide, 0.49, read="peak")[0].flatten().tolist() == [-1, -1, -1, 1, 1]
    assert object_signs(field, weights, guide, 0.51, read="peak")[0].flatten().tolist() == [1] * 5
    with pytest.raises(VidgenError, match="flow_turn_read"):
        VideoAdapter(4, 32, [], [[8, 1]], spatial_flow=True, spatial_text=True, flow_words=True,
                     flow_turn_read="peak")  # word binding "map" turns per place, not per object
    with pytest.raises(VidgenError, match="flow_turn_read: got 'edge'"):
        VideoAdapter(4, 32, [], [[8, 1]], spatial_flow=True, spatial_text=True, flow_words=True,
                     word_binding="appearance", flow_turn_read="edge")


def test_sign_margin_keeps_the_caption_direction_where_the_free_field_barely_disagrees():
    from vidgen.fields import signed_like
    field = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 4)
    guide = torch.tensor([[-0.1, -0.49, -0.51, -2.0], [0.0, 0.0, 0.0, 5.0]]).view(1, 2, 1, 4)
    assert signed_like(field, guide)[0, 0, 0].tolist() == [-1, -1, -1, -1]
    assert signed_like(field, guide, margin=0.5)[0, 0, 0].tolist() == [1, 1, -1, -1]


def test_frame_differences_pair_each_frame_with_its_farther_neighbour():
    from vidgen.context import frame_differences
    from vidgen.sampling import context_window, joint_window
    video = (torch.arange(10.0) ** 2).view(1, 10, 1, 1, 1).expand(2, 10, 1, 2, 2)  # frame j holds j²
    cases = [(7, context_window(7, 4), {6: 36 - 25, 5: 25 - 16, 4: 16 - 9}),  # 3 and the anchor 0: no neighbour
             (2, context_window(2, 4), {1: 1 - 0}),
             (4, joint_window(4, 10, 4), {3: 9 - 4, 5: 25 - 36})]  # after the target: minus the later frame
    for i, window, want in cases:
        ctx = FrameContext.make(video[:, window], window, i, 0.0, k=6)  # padded slots stay zero
        got = frame_differences(ctx.frames, ctx.offsets, ctx.mask)[:, :, 0, 0, 0]
        expected = torch.tensor([float(want.get(j, 0)) for j in window] + [0.0] * (6 - len(window)))
        assert torch.equal(got, expected.expand(2, 6)), (i, window, got)


def test_text_pooling_starts_as_the_mean_and_a_query_can_pick_one_word():
    from vidgen.context import TEXT_QUERIES, SpatialEncoder
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6)
    text = torch.randn(3, 5, 6)
    normed = torch.nn.functional.layer_norm(text, (6,), eps=1e-6)  # each token: zero mean, unit variance
    assert torch.allclose(enc.pool_text(text), normed.mean(dim=1).repeat(1, TEXT_QUERIES), atol=1e-5)
    assert torch.allclose(enc.pool_text(0.1 * text), enc.pool_text(text), atol=1e-3)  # scale does not count
    word = torch.tensor([-1.0, -1.0, 5.0, -1.0, -1.0, -1.0])
    text[:, 3] = word  # one token stands out along the first query's direction
    normed = torch.nn.functional.layer_norm(text, (6,), eps=1e-6)
    with torch.no_grad():
        enc.text_queries[0] = 100 * word
    pooled = enc.pool_text(text).view(3, TEXT_QUERIES, 6)
    assert torch.allclose(pooled[:, 0], normed[:, 3], atol=1e-3)  # the first query reads that word alone
    assert torch.allclose(pooled[:, 1], normed.mean(dim=1), atol=1e-5)  # the others still average


def test_the_caption_displaces_the_spatial_path_through_text_flow():
    from vidgen.context import SpatialEncoder
    enc = SpatialEncoder(4, 8, [(8, 1)], 4, text_dim=6, flow=True)
    torch.nn.init.normal_(enc.heads[0].weight)
    ctx = inputs()[3]
    left, right = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    assert torch.equal(enc(*ctx.as_args(), left)[0][0], enc(*ctx.as_args(), right)[0][0])  # zero-initialised
    with torch.no_grad():
        enc.text_flow[-1].weight[0] = 5.0  # the words' hidden features → a displacement along x
    assert (enc(*ctx.as_args(), left)[0][0] - enc(*ctx.as_args(), right)[0][0]).abs().max() > 1e-3


def test_text_flow_reads_a_shift_as_direction_times_speed_which_no_linear_read_can():
    """Pooled captions are means of word vectors: direction (left/right) + speed (slow/fast). The shift wanted,
    ±1 or ±3 px, is their product; the best linear read misses it by 1 px RMS (exactly), text_flow learns it."""
    from vidgen.context import TEXT_QUERIES, SpatialEncoder
    torch.manual_seed(0)
    enc = SpatialEncoder(4, 16, [(8, 1)], 4, text_dim=6, flow=True)
    words = torch.nn.functional.layer_norm(torch.randn(4, 6), (6,))  # left, right, slow, fast
    pooled = torch.stack([(words[d] + words[2 + s]) / 2 for d in (0, 1) for s in (0, 1)]).repeat(1, TEXT_QUERIES)
    want = torch.tensor([[-1.0, 0], [-3, 0], [1, 0], [3, 0]])
    design = torch.cat([pooled, torch.ones(4, 1)], dim=1).double()
    linear = (design @ torch.linalg.pinv(design, rtol=1e-5) @ want.double()).float()  # best affine read (the 4 pooled
    # captions are affinely dependent: LS − LF − RS + RF = 0, so a read gives 0 where the shifts give 4; rtol drops the
    # float32 rounding of that zero)
    assert torch.allclose((linear - want).square().mean(0).sqrt()[0], torch.tensor(1.0), atol=1e-4)
    opt = torch.optim.Adam(enc.text_flow.parameters(), lr=1e-2)
    for _ in range(500):
        opt.zero_grad()
        loss = (enc.text_flow(pooled) - want).square().mean()
        loss.backward()
        opt.step()
    assert (enc.text_flow(pooled) - want).square().mean(0).sqrt().max() < 0.05


def test_only_adapter_parameters_train_and_none_enter_the_unet_state(unet):
    n_before = len(unet.state_dict())
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet))
    trainable = {n for n, p in denoiser.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("adapter.") for n in trainable)
    assert len(unet.state_dict()) == n_before
    assert not any(n.startswith("adapter") or "gate" in n for n in unet.state_dict())
    x, t, text, ctx = inputs()
    perturb(denoiser.adapter)
    denoiser(x, t, text, *ctx.as_args())[0].square().mean().backward()
    assert all(p.grad is None for p in unet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.adapter.parameters())


def test_save_load_round_trip(unet, tmp_path):
    adapter = VideoAdapter.for_unet(unet, num_tokens=8).eval()  # from_pretrained returns eval mode
    perturb(adapter, seed=3)
    denoiser = VideoDenoiser(unet, adapter)
    x, t, text, ctx = inputs(seed=1)
    want = denoiser.predict(x, t, text, denoiser.condition(*ctx.as_args(), text))
    adapter.save_pretrained(tmp_path / "adapter")
    adapter.detach()
    loaded = VideoAdapter.from_pretrained(tmp_path / "adapter")
    again = VideoDenoiser(unet, loaded)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in adapter.state_dict().items())
    got = again.predict(x, t, text, again.condition(*ctx.as_args(), text))
    # weights are bit-identical; the outputs may differ in the last bits, since oneDNN's float32 kernels can
    # reassociate sums differently for buffers at other memory alignments (seen: 1e-6 after a backward pass)
    assert torch.allclose(got, want, rtol=0, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["config.json",
                                                                        "diffusion_pytorch_model.safetensors"]


def test_mismatched_base_is_a_clear_error(unet, tmp_path):
    adapter = VideoAdapter.for_unet(unet)
    from diffusers import UNet2DConditionModel
    other = UNet2DConditionModel.from_config({**unet.config, "cross_attention_dim": 48})
    with pytest.raises(VidgenError, match="cross_attention_dim"):
        adapter.attach(other)
    wider = UNet2DConditionModel.from_config({**unet.config, "block_out_channels": (32, 32)})
    with pytest.raises(VidgenError, match="does not fit"):
        adapter.attach(wider)


def test_cached_context_equals_recomputing_it_every_step(pipe):
    denoiser = pipe.denoiser
    perturb(denoiser.adapter)
    try:
        text = pipe.encode_prompt("a red circle moving right")
        null = pipe.encode_prompt("")
        videos = []
        for cache in (True, False):
            model = frame_model(denoiser, text, null, Guidance(3.0, 1.5), cache=cache)
            scheduler = make_scheduler(pipe.scheduler, "dpm++")
            frames = sample_autoregressive(model, scheduler, (1, 4, 16, 16), 4, 3, window=2,
                                           generator=torch.Generator().manual_seed(0))
            videos.append(torch.stack(list(frames)))
        assert torch.equal(videos[0], videos[1])
        assert not torch.allclose(videos[0][1], videos[0][2])
    finally:
        denoiser.adapter.load_state_dict(VideoAdapter.for_unet(denoiser.unet).state_dict())


def test_guidance_formulas():
    e00, e10, e11 = torch.tensor(1.0), torch.tensor(3.0), torch.tensor(7.0)
    assert Guidance(2.0, 1.5).combine([e00, e10, e11]) == 1 + 1.5 * 2 + 2 * 4
    assert Guidance(2.0).combine([e10, e11]) == 3 + 2 * 4
    assert Guidance(2.0).branches == [(True, False), (True, True)]
    assert Guidance(1.0).branches == [(True, True)]
    assert len(Guidance(2.0, 0.5).branches) == 3


def test_later_guidance_applies_to_frames_drawn_given_others(pipe):
    """`later_text_scale` is the text guidance of a frame with a context; a frame without one keeps `text_scale`."""
    denoiser = pipe.denoiser
    perturb(denoiser.adapter)
    try:
        text, null = pipe.encode_prompt("a red circle moving right"), pipe.encode_prompt("")
        x, t = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor(500)
        empty = FrameContext.make(torch.zeros(1, 0, 4, 16, 16), [], 0, 0.0)
        given = FrameContext.make(torch.randn(1, 2, 4, 16, 16, generator=torch.Generator().manual_seed(1)),
                                  [0, 1], 2, 0.0)

        def predict(guidance, ctx):
            return frame_model(denoiser, text, null, guidance)(ctx)(x, t)

        split = Guidance(3.0, later_text_scale=1.5)
        assert torch.equal(predict(split, empty), predict(Guidance(3.0), empty))
        assert torch.equal(predict(split, given), predict(Guidance(1.5), given))
        assert not torch.allclose(predict(split, given), predict(Guidance(3.0), given))
    finally:
        denoiser.adapter.load_state_dict(VideoAdapter.for_unet(denoiser.unet).state_dict())


def test_bicubic_warp_finds_a_quarter_pixel_shift_that_bilinear_undershoots():
    """A sharp bump (σ = 0.6 px, like an object's edge in a VAE latent) moved a quarter pixel: the displacement
    that best carries one onto the other is 0.82 of the shift under bilinear warping and 0.96 under bicubic."""
    from vidgen.fields import warp
    p = torch.arange(16.0)
    bump = lambda c: torch.exp(-(p - c) ** 2 / (2 * 0.6 ** 2)).expand(1, 1, 16, 16)  # noqa: E731
    before, after = bump(8.0), bump(8.25)
    shifts = torch.linspace(-0.5, 0.0, 201)

    def best(mode):
        flows = [torch.stack([torch.full((1, 16, 16), float(d)), torch.zeros(1, 16, 16)], 1) for d in shifts]
        return float(shifts[int(torch.argmin(torch.stack([(warp(before, f, mode) - after).square().sum()
                                                            for f in flows])))])
    assert best("bilinear") == pytest.approx(-0.205, abs=0.003)
    assert best("bicubic") == pytest.approx(-0.24, abs=0.003)
