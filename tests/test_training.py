"""Training: the loss goes down, resuming is exact, data problems are reported, not fatal."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from vidgen import VidgenError
from vidgen.data.video_folder import VideoFolderDataset
from vidgen.training import TrainConfig, _step_generator, loss_fn, make_batch, prepare_data, train


def config(tiny_model, video_folder, out, **kw):
    base = dict(model=str(tiny_model), data=str(video_folder), out=str(out), num_frames=4, height=32, width=32,
                batch_size=4, steps=4, checkpoint_every=2, log_every=1, num_tokens=4, adapter_width=32,
                joint_fraction=0.5, context_noise=100)
    return TrainConfig(**{**base, **kw})


def test_video_folder_skips_and_reports_bad_files(video_folder):
    data = VideoFolderDataset(video_folder, num_frames=4, height=32, width=32, stride=2)
    assert data.skipped.unreadable == ["broken.mp4"] and data.skipped.too_short == ["short.gif"]
    assert "read 6 of 8 videos" in data.report
    assert len(data) == 6 and data[0][0].shape == (4, 32, 32, 3)  # 12 frames, stride 2: one clip of span 7
    with pytest.raises(VidgenError, match="no usable clip"):
        VideoFolderDataset(video_folder, num_frames=40, height=32, width=32)


def test_fixed_batch_loss_goes_down(pipe, tiny_model, video_folder, tmp_path):
    cfg = config(tiny_model, video_folder, tmp_path, batch_size=8, text_dropout=0.0, context_dropout=0.0)
    data = prepare_data(cfg, pipe, (32, 32))
    from vidgen import VideoAdapter, VideoDenoiser
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel.from_config(pipe.denoiser.unet.config)
    unet.load_state_dict(pipe.denoiser.unet.state_dict())
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet, num_tokens=4, width=32))
    batch = make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon", _step_generator(cfg, 0, 0, 0))
    opt = torch.optim.AdamW(denoiser.adapter.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = loss_fn(denoiser, batch, "cpu", torch.float32)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the random base predicts worse than zero (loss > 1); the adapter learns to correct it
    assert losses[-1] < 0.9 * losses[0] and max(losses[-10:]) < min(losses[:5]), losses


def test_resume_is_exact(tiny_model, video_folder, tmp_path):
    """4 steps in one go equal 2 steps + resume + 2 steps, weight for weight (EMA and optimizer too)."""
    kw = dict(ema_decay=0.9, gradient_accumulation=2)
    train(config(tiny_model, video_folder, tmp_path / "a", **kw))
    train(config(tiny_model, video_folder, tmp_path / "b", steps=2, **kw))
    train(config(tiny_model, video_folder, tmp_path / "b", steps=4, **kw), resume=True)
    for name in ("adapter/diffusion_pytorch_model.safetensors", "checkpoints/step-0000004/ema.safetensors",
                 "checkpoints/step-0000004/optimizer.safetensors",
                 "checkpoints/step-0000004/adapter/diffusion_pytorch_model.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    first = load_file(tmp_path / "a/checkpoints/step-0000002/adapter/diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(first[k], a[k]) for k in a)  # training did move the weights
    saved = json.loads((tmp_path / "b/checkpoints/step-0000004/train_config.json").read_text())
    assert saved["steps"] == 4 and saved["ema_decay"] == 0.9
    log = [json.loads(line) for line in (tmp_path / "b/log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]


def test_resume_guards(tiny_model, video_folder, tmp_path):
    train(config(tiny_model, video_folder, tmp_path, steps=2))
    with pytest.raises(VidgenError, match="already holds checkpoints"):
        train(config(tiny_model, video_folder, tmp_path, steps=4))
    with pytest.raises(VidgenError, match="batch_size is 2 but the checkpoint was trained with 4"):
        train(config(tiny_model, video_folder, tmp_path, steps=4, batch_size=2), resume=True)
    # a checkpoint from before an option existed was trained without it
    saved = tmp_path / "checkpoints/step-0000002/train_config.json"
    saved.write_text(json.dumps({k: v for k, v in json.loads(saved.read_text()).items() if k != "frame_differences"}))
    with pytest.raises(VidgenError, match="frame_differences is True but the checkpoint was trained with False"):
        train(config(tiny_model, video_folder, tmp_path, steps=4), resume=True)


def test_latents_are_cached(pipe, tiny_model, video_folder, tmp_path, monkeypatch):
    cfg = config(tiny_model, video_folder, tmp_path)
    first = prepare_data(cfg, pipe, (32, 32))
    import vidgen.training
    monkeypatch.setattr(vidgen.training, "VideoFolderDataset", None)  # a second run must not decode again
    again = prepare_data(cfg, pipe, (32, 32))
    assert torch.equal(first.latents, again.latents) and torch.equal(first.texts, again.texts)


def test_v_prediction_base(tmp_path, video_folder):
    from vidgen import VideoPipeline
    from vidgen.tiny import build_tiny_sd
    model = build_tiny_sd(tmp_path / "v", prediction_type="v_prediction")
    train(config(model, video_folder, tmp_path / "out", steps=1))
    pipe = VideoPipeline.from_pretrained(model, adapter=tmp_path / "out" / "adapter")
    video = pipe("a red square", num_frames=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert video.frames.shape == (2, 32, 32, 3)


def test_trains_from_an_in_memory_shapes_dataset(tiny_model, tmp_path):
    from vidgen.data.shapes import ShapesDataset
    data = ShapesDataset(4, frames=4, canvas=32, seed=0)
    cfg = config(tiny_model, "shapes", tmp_path, steps=2)
    train(cfg, dataset=data)
    assert (tmp_path / "adapter" / "config.json").is_file()
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


def test_base_training_loop_resumes_exactly(tmp_path):
    """The loop that trains the demo model's parts: 6 steps equal 2 (stopped early on the 6-step schedule, between
    two regular checkpoints) + resume + 4, weight for weight, and so do the EMA weights."""
    from vidgen.base.loop import fit

    def run(state, steps, stop_at=None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

        def loss_at(step):
            g = torch.Generator().manual_seed(step)
            x = torch.randn(16, 4, generator=g)
            loss = (model(x).squeeze(-1) - x.sum(-1)).pow(2).mean()
            return loss, loss.item()

        log, ema = fit(model, opt, state, steps, loss_at, lambda step: 1e-2, save_every=3, ema_decay=0.5,
                       stop_at=stop_at)
        return model, ema

    whole, ema = run(tmp_path / "a", 6)
    run(tmp_path / "b", 6, stop_at=2)
    resumed, ema_resumed = run(tmp_path / "b", 6)
    assert all(torch.equal(p, q) for p, q in zip(whole.parameters(), resumed.parameters()))
    assert ema.keys() == ema_resumed.keys() and all(torch.equal(ema[k], ema_resumed[k]) for k in ema)
    weights = dict(whole.named_parameters())
    assert not torch.equal(ema["0.weight"], weights["0.weight"])  # an average, not the last weights
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["ema.safetensors", "model.safetensors",
                                                                  "optimizer.json", "optimizer.safetensors",
                                                                  "trainer.json"]


def test_init_adapter_takes_matching_weights_and_keeps_new_parts_fresh(pipe, tmp_path, capsys):
    from vidgen import VideoAdapter
    from vidgen.training import init_from

    from .conftest import perturb

    unet = pipe.denoiser.unet
    old = VideoAdapter.for_unet(unet, num_tokens=4, width=32)
    perturb(old, seed=5)
    old.save_pretrained(tmp_path / "old")
    new = VideoAdapter.for_unet(unet, num_tokens=4, width=32, frame_differences=True, spatial_text=True)
    init_from(new, str(tmp_path / "old"))
    own, saved = new.state_dict(), old.state_dict()
    assert all(torch.equal(own[k], saved[k]) for k in saved if own[k].shape == saved[k].shape)
    assert not torch.equal(own["spatial.stem.0.weight"][:, :4], saved["spatial.stem.0.weight"][:, :4])  # reshaped
    assert own["spatial.text_film.weight"].abs().sum() == 0  # new: still zero-initialised
    new_parts = "spatial.stem.0.weight, spatial.text_film.bias, spatial.text_film.weight, spatial.text_queries"
    assert f"new: {new_parts}" in capsys.readouterr().out
    with pytest.raises(VidgenError, match="init_adapter: got"):
        init_from(new, str(tmp_path))


def _batch_with(pipe, tiny_model, video_folder, tmp_path, **change):
    """The same step's batch drawn plainly and with `change` to the config, and which examples are
    autoregressive in the plain one (joint contexts sit at level t; autoregressive ones at most context_noise)."""
    cfg = config(tiny_model, video_folder, tmp_path, batch_size=16, joint_fraction=0.5)
    data = prepare_data(cfg, pipe, (32, 32))
    alphas = pipe.scheduler.alphas_cumprod.float()
    plain = make_batch(data, cfg, alphas, "epsilon", _step_generator(cfg, 0, 0, 0))
    changed = make_batch(data, TrainConfig(**{**cfg.__dict__, **change}), alphas, "epsilon",
                         _step_generator(cfg, 0, 0, 0))
    joint = plain["context"].levels[:, :1].squeeze(1) == plain["t"].float()
    ar = ~joint & (plain["context"].levels[:, 0] <= cfg.context_noise)
    assert ar.any() and (~ar).any()
    return plain, changed, ar


def test_start_fraction_targets_frame_one_and_leaves_other_draws_alone(pipe, tiny_model, video_folder, tmp_path):
    plain, start, ar = _batch_with(pipe, tiny_model, video_folder, tmp_path, start_fraction=1.0)
    ctx = start["context"]
    assert (ctx.mask[ar].sum(1) == 1).all() and (ctx.offsets[ar, 0] == -1).all() and ctx.anchor[ar, 0].all()
    assert torch.equal(start["t"], plain["t"]) and torch.equal(start["target"], plain["target"])
    assert torch.equal(ctx.frames[~ar], plain["context"].frames[~ar])  # joint examples unchanged


def test_first_fraction_targets_frame_zero_with_no_context(pipe, tiny_model, video_folder, tmp_path):
    """`--first-fraction 1`: every autoregressive example targets frame 0 with an empty context, the frame a
    video opens with; joint examples and the noise draws stay as they were."""
    plain, first, ar = _batch_with(pipe, tiny_model, video_folder, tmp_path, first_fraction=1.0)
    assert (first["context"].mask[ar].sum(1) == 0).all() and not first["carry"][ar].any()
    assert not first["history_ok"][ar].any() and plain["history_ok"][ar].any()  # target frame 0: nothing before it
    assert torch.equal(first["t"], plain["t"]) and torch.equal(first["target"], plain["target"])
    assert torch.equal(first["context"].frames[~ar], plain["context"].frames[~ar])
    with pytest.raises(VidgenError, match="first_fraction: got 1.5"):
        config(tiny_model, video_folder, tmp_path, first_fraction=1.5).validate()


def test_oversampled_clips_are_drawn_in_proportion(pipe, tiny_model, video_folder, tmp_path):
    """`--oversample TEXT:FACTOR`: a clip whose caption holds TEXT is drawn FACTOR times as often as another, in
    every micro-batch (within 4 binomial standard deviations over 4,096 draws); a TEXT no caption holds is refused."""
    from vidgen.training import TrainingData, clip_weights

    cfg = config(tiny_model, video_folder, tmp_path, batch_size=512, oversample=" and :3")
    captions = ["a red circle", "a red circle and a blue square"]
    ids = torch.tensor([0, 1, 0, 0])  # one clip in four has the fragment: drawn 3 / (3 + 3) = half the time
    weights = clip_weights(cfg, captions, ids)
    assert weights.tolist() == [1.0, 3.0, 1.0, 1.0]
    latents = torch.arange(4.0).view(4, 1, 1, 1, 1).expand(4, 4, 4, 4, 4).contiguous()  # clip k is all k
    data = TrainingData(latents, ids, pipe.encode_prompt("a clip").expand(2, -1, -1), pipe.encode_prompt(""), weights)
    drawn = torch.cat([make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon",
                                  _step_generator(cfg, step, 0, 0))["clean"][:, 0, 0, 0] for step in range(8)])
    share = (drawn == 1).float().mean().item()
    assert abs(share - 0.5) < 4 * (0.25 / len(drawn)) ** 0.5, share
    assert set(drawn.tolist()) == {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(VidgenError, match="oversample: got ' or :3'"):
        clip_weights(config(tiny_model, video_folder, tmp_path, oversample=" or :3"), captions, ids)
    for bad in (" and :0", " and :inf", " and :many", ":2", " and :3;", " and :3;up"):
        with pytest.raises(VidgenError, match="oversample: got"):
            config(tiny_model, video_folder, tmp_path, oversample=bad).validate()


def test_oversample_rules_multiply(tiny_model, video_folder, tmp_path):
    """Several `--oversample` rules joined by ';': each clip's weight is the product of the factors of the rules
    its caption matches; a rule no caption matches is refused by name."""
    from vidgen.training import clip_weights

    captions = ["a red circle moving up", "a red circle moving up and a blue square", "a blue square and a cross",
                "a cross"]
    cfg = config(tiny_model, video_folder, tmp_path, oversample=" and :3; up:2")
    cfg.validate()
    assert clip_weights(cfg, captions, torch.tensor([0, 1, 2, 3, 1])).tolist() == [2.0, 6.0, 3.0, 1.0, 6.0]
    with pytest.raises(VidgenError, match="none contains ' left'"):
        clip_weights(config(tiny_model, video_folder, tmp_path, oversample=" and :3; left:2"), captions,
                     torch.tensor([0, 1]))


def test_x0_loss_weighting_is_the_x0_error(pipe, tiny_model, video_folder, tmp_path):
    """weight × ‖ε̂ − ε‖² = ‖x̂₀ − x₀‖² exactly (where the weight is not capped), per example."""
    from vidgen.training import X0_WEIGHT_CAP

    cfg = config(tiny_model, video_folder, tmp_path, batch_size=16, loss_weighting="x0")
    alphas = pipe.scheduler.alphas_cumprod.float()
    batch = make_batch(data=prepare_data(cfg, pipe, (32, 32)), config=cfg, alphas_cumprod=alphas,
                       prediction_type="epsilon", generator=_step_generator(cfg, 0, 0, 0))
    abar = alphas[batch["t"]].view(-1, 1, 1, 1)
    eps, x_t = batch["target"], batch["x_t"]
    x0 = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    pred = eps + 0.3 * torch.randn(eps.shape, generator=torch.Generator().manual_seed(0))
    x0_pred = (x_t - (1 - abar).sqrt() * pred) / abar.sqrt()
    want = (x0_pred - x0).square().flatten(1).mean(1)
    got = batch["weight"] * (pred - eps).square().flatten(1).mean(1)
    uncapped = batch["weight"] < X0_WEIGHT_CAP
    assert uncapped.sum() >= 4 and (~uncapped).any()
    assert torch.allclose(got[uncapped], want[uncapped], rtol=1e-3)
    assert (got[~uncapped] < want[~uncapped]).all()


@pytest.mark.parametrize("horizon", [1, 3])
def test_flow_loss_is_exact_at_the_true_displacement(pipe, tiny_model, video_folder, tmp_path, horizon):
    """Clips whose frames shift one latent pixel right per frame (circularly): a displacement of exactly −1 px
    along x carries each previous frame onto its target everywhere but the first column (the warp repeats the
    edge where the roll wraps), and k times it carries frame i−k everywhere but the first k columns; so the flow
    loss is the mean of those columns' errors over the (example, k) pairs that exist, and no displacement does
    better."""
    from diffusers import UNet2DConditionModel

    from vidgen import VideoAdapter, VideoDenoiser
    from vidgen.training import TrainingData

    cfg = config(tiny_model, video_folder, tmp_path, batch_size=32, joint_fraction=0.5, context_noise=0,
                 spatial_flow=True, flow_loss=1.0, flow_horizon=horizon)
    unet = UNet2DConditionModel.from_config(pipe.denoiser.unet.config)
    denoiser = VideoDenoiser(unet, VideoAdapter.for_unet(unet, num_tokens=4, width=32, spatial_flow=True))
    base = torch.randn(3, 1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    latents = torch.cat([base.roll(j, dims=-1) for j in range(4)], dim=1)  # frame j: base moved j px right
    text = pipe.encode_prompt("a clip")
    data = TrainingData(latents, torch.zeros(3, dtype=torch.long), text, pipe.encode_prompt(""))
    batch = make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon", _step_generator(cfg, 0, 0, 0))
    carry, ctx, history, ok = batch["carry"], batch["context"], batch["history"], batch["history_ok"]
    assert carry.any() and (~carry).any() and history.shape[1] == horizon
    if horizon > 1:
        assert (carry & ok[:, -1]).any() and (carry & ~ok[:, -1]).any()  # some pairs exist, some do not
    for b in carry.nonzero().flatten():  # the previous frame is the context slot at offset −1, clean
        slot = (ctx.offsets[b] == -1) & ctx.mask[b]
        assert torch.equal(ctx.frames[b][slot][0], history[b, 0])
        i = -int(ctx.offsets[b][ctx.mask[b]].min())  # the anchor, frame 0, is at offset −i
        for k in range(1, horizon + 1):  # frame i−k exists for k ≤ i, and is the target moved k px back
            assert bool(ok[b, k - 1]) == (k <= i)
            if k <= i:
                assert torch.equal(history[b, k - 1], batch["clean"][b].roll(-k, dims=-1))
    flow_bias = denoiser.adapter.spatial.flow[-1].bias  # the head's last layer is zero: the field is its bias
    losses = {}
    for dx in (0.0, -0.5, -1.0, -1.5):
        with torch.no_grad():
            flow_bias.copy_(torch.tensor([dx, 0.0]))
            losses[dx] = loss_fn(denoiser, batch, "cpu", torch.float32, flow_weight=1.0)[1]["flow_loss"]
    errors = []
    for k in range(1, horizon + 1):  # the integer shift by k with the edge column repeated, written out
        use = carry & ok[:, k - 1]
        prev, clean = history[use, k - 1], batch["clean"][use]
        moved = torch.cat([prev[..., :1].expand(*prev.shape[:-1], k), prev[..., :-k]], dim=-1)
        errors.append((moved - clean).square().flatten(1).mean(dim=1))
    assert losses[-1.0] == pytest.approx(torch.cat(errors).mean().item(), rel=1e-4)
    assert losses[-1.0] < min(losses[0.0], losses[-0.5], losses[-1.5])


def test_still_fraction_fills_the_context_with_the_previous_frame(pipe, tiny_model, video_folder, tmp_path):
    cfg = config(tiny_model, video_folder, tmp_path, batch_size=16, joint_fraction=0.25, context_noise=0)
    data = prepare_data(cfg, pipe, (32, 32))
    alphas = pipe.scheduler.alphas_cumprod.float()
    plain = make_batch(data, cfg, alphas, "epsilon", _step_generator(cfg, 0, 0, 0))
    still = make_batch(data, TrainConfig(**{**cfg.__dict__, "still_fraction": 1.0}), alphas, "epsilon",
                       _step_generator(cfg, 0, 0, 0))
    a, b = plain["context"], still["context"]
    assert torch.equal(plain["target"], still["target"]) and torch.equal(a.offsets, b.offsets)
    changed = [k for k in range(16) if not torch.equal(a.frames[k], b.frames[k])]
    assert changed
    for k in changed:  # autoregressive, past frame 1: every slot holds the frame at offset −1
        prev = a.frames[k][(a.offsets[k] == -1) & a.mask[k]][0]
        assert (b.frames[k][b.mask[k]] == prev).all() and (a.offsets[k][a.mask[k]] < 0).all()


def test_flow_words_trains_the_free_field_that_signs_it_by_the_same_loss(pipe, tiny_model, video_folder, tmp_path):
    """With --flow-words the displacement loss trains both fields: the word field that warps (untrained: still)
    and the free field that signs it (guide_loss), each exactly as a plain adapter's field would be."""
    from diffusers import UNet2DConditionModel

    from vidgen import VideoAdapter, VideoDenoiser
    from vidgen.training import TrainingData

    cfg = config(tiny_model, video_folder, tmp_path, batch_size=32, context_noise=0, spatial_flow=True,
                 spatial_text=True, flow_words=True, flow_loss=1.0)
    base = torch.randn(3, 1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    latents = torch.cat([base.roll(j, dims=-1) for j in range(4)], dim=1)  # frame j: base moved j px right
    data = TrainingData(latents, torch.zeros(3, dtype=torch.long), pipe.encode_prompt("a clip"),
                        pipe.encode_prompt(""))
    batch = make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon", _step_generator(cfg, 0, 0, 0))

    def parts(dx: float, **options) -> dict:
        unet = UNet2DConditionModel.from_config(pipe.denoiser.unet.config)
        adapter = VideoAdapter.for_unet(unet, num_tokens=4, width=32, spatial_flow=True, spatial_text=True, **options)
        with torch.no_grad():
            adapter.spatial.flow[-1].bias.copy_(torch.tensor([dx, 0.0]))  # the free field: dx everywhere
        return loss_fn(VideoDenoiser(unet, adapter), batch, "cpu", torch.float32, flow_weight=1.0)[1]

    words = parts(-1.0, flow_words=True)
    assert words["guide_loss"] == pytest.approx(parts(-1.0)["flow_loss"], rel=1e-5)
    assert words["flow_loss"] == pytest.approx(parts(0.0)["flow_loss"], rel=1e-5)
    assert words["guide_loss"] < words["flow_loss"]


def test_turn_loss_leans_the_free_fields_read_towards_the_sign_that_carries_the_frame_on(pipe, tiny_model,
                                                                                          video_folder, tmp_path):
    """--turn-loss: a square moves one latent pixel right a frame, so the field that carries a frame on is −1 px
    along x (warp reads p + field). Every word offers the same motion m and every place takes the words and the
    still key alike (a zero query), so the field is c·m everywhere with c = L / (L + 1), and a free field g the
    same everywhere reads r = (g·m) / (c |m|²) at every place. The loss is then exactly softplus(−4 |r|) where
    the sign r gives carries the frame on (whether the words point the right way and r keeps them, or the
    wrong way and r turns them) and softplus(4 |r|) where it does not; its gradient moves g towards the right
    side; and only autoregressive examples whose context shows motion count (there are some of each)."""
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel

    from vidgen import VideoAdapter, VideoDenoiser
    from vidgen.training import TrainingData

    cfg = config(tiny_model, video_folder, tmp_path, num_frames=4, batch_size=32, spatial_flow=True,
                 spatial_text=True, flow_words=True, word_binding="appearance", turn_loss=1.0)
    cfg.validate()
    latents = torch.zeros(3, 4, 4, 16, 16)
    for j in range(4):  # a flat square on an empty ground, one latent pixel further right each frame: each
        latents[:, j, :, 6:10, 4 + j:8 + j] = 1.0  # place is carried on better the right way or as well both ways
    text = pipe.encode_prompt("a clip")
    data = TrainingData(latents, torch.zeros(3, dtype=torch.long), text, pipe.encode_prompt(""))
    batch = make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon", _step_generator(cfg, 0, 0, 0))
    moving = batch["carry"] & (batch["context"].mask.sum(dim=1) >= 2)
    assert moving.any() and (~moving).any()
    c = text.shape[1] / (text.shape[1] + 1)

    def run(words_dx: float, free_dx: float):
        unet = UNet2DConditionModel.from_config(pipe.denoiser.unet.config)
        adapter = VideoAdapter.for_unet(unet, num_tokens=4, width=32, spatial_flow=True, spatial_text=True,
                                        flow_words=True, word_binding="appearance")
        field = adapter.spatial.word_field
        with torch.no_grad():
            field.query[-1].weight.zero_()
            field.query[-1].bias.zero_()
            field.motion[-1].bias.copy_(torch.tensor([words_dx, 0.0]))
            adapter.spatial.flow[-1].bias.copy_(torch.tensor([free_dx, 0.0]))
        loss, parts = loss_fn(VideoDenoiser(unet, adapter), batch, "cpu", torch.float32, turn_weight=1.0)
        loss.backward()
        return parts, adapter.spatial.flow[-1].bias.grad[0].item()

    for words_dx, free_dx, right in ((-1.0, -0.5, True), (1.0, -0.5, True), (1.0, 0.5, False), (-1.0, 0.5, False)):
        r = free_dx * words_dx / c  # (g·m) / (c |m|²) with |m| = 1
        parts, grad = run(words_dx, free_dx)
        want = F.softplus(torch.tensor(-4 * abs(r) if right else 4 * abs(r))).item()
        assert parts["turn_loss"] == pytest.approx(want, rel=1e-4), (words_dx, free_dx)
        assert parts["turn_right"] == (1.0 if right else 0.0)
        # descent moves r towards the side that carries the frame on: towards the words' own sign when they
        # point the right way (+1, r up), away from it when they point the wrong way (−1, r down)
        towards = 1.0 if words_dx < 0 else -1.0
        assert -grad * words_dx * towards > 0, (words_dx, free_dx, grad)
    with pytest.raises(VidgenError, match="turn_loss: got 1.0; expected 0 unless the adapter has --flow-words"):
        config(tiny_model, video_folder, tmp_path, spatial_flow=True, turn_loss=1.0).validate()


def test_train_only_trains_the_named_parameters_and_keeps_the_rest_exactly(pipe, tiny_model, video_folder,
                                                                          tmp_path):
    """--train-only spatial.flow from an init adapter: the exported adapter (EMA weights) differs from the init
    in the free field's head alone, every other tensor equal bit for bit; the log carries the turn loss."""
    from vidgen import VideoAdapter

    from .conftest import perturb

    options = dict(spatial_flow=True, spatial_text=True, flow_words=True, word_binding="appearance")
    init = VideoAdapter.for_unet(pipe.denoiser.unet, num_tokens=4, width=32, frame_differences=True, **options)
    perturb(init, seed=3)
    with torch.no_grad():
        init.spatial.word_field.motion[-1].bias.copy_(torch.tensor([-1.0, 0.5]))
        init.spatial.flow[-1].bias.copy_(torch.tensor([0.3, -0.2]))
    init.save_pretrained(tmp_path / "init")
    out = train(config(tiny_model, video_folder, tmp_path / "run", init_adapter=str(tmp_path / "init"),
                       train_only="spatial.flow", turn_loss=1.0, flow_loss=1.0, ema_decay=0.9, joint_fraction=0.0,
                       learning_rate=1e-2, **options))
    got, was = load_file(out / "diffusion_pytorch_model.safetensors"), init.state_dict()
    changed = {k for k in was if not torch.equal(got[k], was[k])}
    assert changed and all(k.startswith("spatial.flow") for k in changed), changed
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert all("turn_loss" in e and 0 <= e["turn_right"] <= 1 for e in log)
    with pytest.raises(VidgenError, match="train_only: got 'nothing.here'; expected prefixes of this adapter"):
        train(config(tiny_model, video_folder, tmp_path / "bad", train_only="nothing.here"))


def test_hard_frames_are_the_ones_the_init_field_misses_and_are_drawn_as_weighed(pipe, tiny_model, video_folder,
                                                                                tmp_path, monkeypatch):
    """--hard-frames: clips shift one latent pixel right per frame up to frame 3, then back left (a bounce). An
    init adapter whose field is −1 px along x everywhere (the motion so far) misses exactly the frames after the
    turn: `field_errors` is the displacement loss of each frame i ≥ 2 given its real context (NaN before), those
    frames are the hard ones, the ranking is cached, and target frames are drawn in proportion to their weights
    (within 4 binomial standard deviations over 4,096 draws)."""
    from diffusers import UNet2DConditionModel

    from vidgen import VideoAdapter
    from vidgen.fields import warp
    from vidgen.training import TrainingData, add_hard_frames, field_errors

    unet = UNet2DConditionModel.from_config(pipe.denoiser.unet.config)
    adapter = VideoAdapter.for_unet(unet, num_tokens=4, width=32, spatial_flow=True)
    with torch.no_grad():
        adapter.spatial.flow[-1].bias.copy_(torch.tensor([-1.0, 0.0]))
    adapter.save_pretrained(tmp_path / "init")
    base = torch.randn(3, 1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    latents = torch.cat([base.roll(j, dims=-1) for j in (0, 1, 2, 3, 2, 1)], dim=1)
    data = TrainingData(latents, torch.zeros(3, dtype=torch.long), pipe.encode_prompt("a clip"),
                        pipe.encode_prompt(""))
    errors = field_errors(adapter, data, window=4, interpolation="bilinear")
    assert errors[:, :2].isnan().all()
    field = torch.tensor([-1.0, 0.0]).view(1, 2, 1, 1).expand(3, 2, 16, 16)
    for i in range(2, 6):
        want = (warp(latents[:, i - 1], field) - latents[:, i]).square().flatten(1).mean(dim=1)
        assert torch.allclose(errors[:, i], want, rtol=1e-5)
    assert errors[:, 4:].min() > 5 * errors[:, 2:4].max()  # the turn misses everywhere, the edge one column
    signs = field_errors(adapter, data, window=4, interpolation="bilinear", rank="sign")  # --hard-rank sign
    for i in range(2, 6):
        back = (warp(latents[:, i - 1], -field) - latents[:, i]).square().flatten(1).mean(dim=1)
        assert torch.allclose(signs[:, i], errors[:, i] - back, rtol=1e-4, atol=1e-6)
    assert (signs[:, 2:4] < 0).all() and (signs[:, 4:] > 0).all()  # wrong way only after the turn

    cfg = config(tiny_model, video_folder, tmp_path / "run", num_frames=6, spatial_flow=True, hard_frames=5.0,
                 init_adapter=str(tmp_path / "init"), batch_size=512, joint_fraction=0.0)
    cfg.validate()
    add_hard_frames(data, cfg, adapter)
    hard = data.frame_weights == 5.0
    assert hard.any() and not hard[:, :4].any() and (data.frame_weights[~hard] == 1.0).all()
    signed = TrainingData(latents, data.caption_ids, data.texts, data.null_text)
    add_hard_frames(signed, dataclasses.replace(cfg, hard_rank="sign"), adapter)
    assert (signed.frame_weights == 5.0).any() and not (signed.frame_weights[:, :4] == 5.0).any()
    monkeypatch.setattr("vidgen.training.field_errors", lambda *a, **k: pytest.fail("not read from the cache"))
    again = TrainingData(latents, data.caption_ids, data.texts, data.null_text)
    add_hard_frames(again, cfg, adapter)
    assert torch.equal(again.frame_weights, data.frame_weights)

    data.frame_weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 9.0, 1.0]).expand(3, 6)
    drawn = torch.cat([make_batch(data, cfg, pipe.scheduler.alphas_cumprod.float(), "epsilon",
                                  _step_generator(cfg, step, 0, 0))["context"].offsets.min(dim=1).values
                       for step in range(8)])  # −i for frame i > 0 (the anchor), 0 for frame 0
    share = (drawn == -4).float().mean().item()
    assert abs(share - 9 / 14) < 4 * ((9 / 14) * (5 / 14) / len(drawn)) ** 0.5, share
    for bad, match in ((0.5, "a finite number ≥ 1"), (float("inf"), "a finite number ≥ 1")):
        with pytest.raises(VidgenError, match=f"hard_frames: got {bad}; expected {match}"):
            config(tiny_model, video_folder, tmp_path, hard_frames=bad).validate()
    with pytest.raises(VidgenError, match="hard_frames: got 2.0; expected 1 unless the adapter has --spatial-flow "
                                          "and a field ranks the frames"):
        config(tiny_model, video_folder, tmp_path, hard_frames=2.0, spatial_flow=True).validate()
    with pytest.raises(VidgenError, match="hard_rank: got 'size'; expected loss or sign"):
        config(tiny_model, video_folder, tmp_path, hard_rank="size").validate()


def test_hard_from_ranks_by_the_runs_own_ema_field_and_a_plain_run_resumes_into_it_exactly(tiny_model, video_folder,
                                                                                           tmp_path):
    """--hard-from N: one run ranks its hard frames at step N by its own field (its EMA weights at N, as the
    checkpoint holds them) and draws them from then on. A plain run resumed at N with the two flags added is the
    same run, weight for weight; once the hard frames have acted, changing them fails the resume."""
    from vidgen.pipeline import VideoPipeline
    from vidgen.training import field_errors

    kw = dict(num_frames=6, spatial_flow=True, flow_loss=1.0, ema_decay=0.9, joint_fraction=0.0)
    one = config(tiny_model, video_folder, tmp_path / "a", hard_frames=5.0, hard_from=2, **kw)
    train(one)
    train(config(tiny_model, video_folder, tmp_path / "b", steps=2, **kw))
    train(config(tiny_model, video_folder, tmp_path / "b", hard_frames=5.0, hard_from=2, **kw), resume=True)
    for name in ("adapter/diffusion_pytorch_model.safetensors", "checkpoints/step-0000004/ema.safetensors",
                 "checkpoints/step-0000004/optimizer.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    plain = config(tiny_model, video_folder, tmp_path / "c", **kw)
    train(plain)
    a, c = (load_file(tmp_path / r / "adapter/diffusion_pytorch_model.safetensors") for r in "ac")
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the hard frames changed the draw of steps 3 and 4

    (cache,) = (tmp_path / "a" / "cache").glob("own-field-errors-*.safetensors")
    pipe = VideoPipeline.from_pretrained(str(tiny_model), adapter_options=one.adapter_options())
    pipe.denoiser.adapter.load_state_dict(load_file(tmp_path / "a/checkpoints/step-0000002/ema.safetensors"))
    data = prepare_data(one, pipe, (32, 32))
    want = field_errors(pipe.denoiser.adapter.eval(), data, one.window, one.flow_interpolation)
    assert torch.allclose(load_file(cache)["errors"], want, equal_nan=True)

    with pytest.raises(VidgenError, match="resume: hard_from is 3 but the checkpoint was trained with 2"):
        train(config(tiny_model, video_folder, tmp_path / "a", steps=6, hard_frames=5.0, hard_from=3, **kw),
              resume=True)
    cache.unlink()  # resuming past the ranking needs it
    with pytest.raises(VidgenError, match="hard_from: got 2; expected a run that ranked its hard frames"):
        train(config(tiny_model, video_folder, tmp_path / "a", steps=6, hard_frames=5.0, hard_from=2, **kw),
              resume=True)
    with pytest.raises(VidgenError, match="hard_from: got 2; expected 0, or a step N ≥ 1 with --hard-frames"):
        config(tiny_model, video_folder, tmp_path, hard_from=2).validate()


def test_own_context_takes_context_frames_from_own_videos_and_keeps_real_targets(pipe, tiny_model, video_folder,
                                                                                 tmp_path):
    """`own_context` 1: every autoregressive example past frame 1 reads its context frames after the anchor from
    the clip's own video, drawn among the clips that have one; its anchor, target and history stay real."""
    from vidgen.training import TrainingData

    cfg = config(tiny_model, video_folder, tmp_path, batch_size=64, joint_fraction=0.25, context_noise=0,
                 own_context=1.0, flow_horizon=2)
    n, f = 5, cfg.num_frames
    latents = (16 * torch.arange(n)[:, None] + torch.arange(f)).float().view(n, f, 1, 1, 1).expand(
        n, f, 4, 4, 4).contiguous()  # clip c, frame j is all 16c + j
    data = TrainingData(latents, torch.zeros(n, dtype=torch.long), pipe.encode_prompt("a clip"), pipe.encode_prompt(""))
    data.own = latents + 1000
    data.own[:, 0] = latents[:, 0]  # an own video starts from the real frame 0
    data.own_weights = torch.tensor([0.0, 1, 1, 1, 1])  # clip 0 has no own video
    alphas = pipe.scheduler.alphas_cumprod.float()
    seen = 0
    for step in range(4):
        batch = make_batch(data, cfg, alphas, "epsilon", _step_generator(cfg, step, 0, 0))
        ctx, clean = batch["context"], batch["clean"][:, 0, 0, 0]
        for b in range(cfg.batch_size):
            c, i = divmod(int(clean[b]), 16)  # the target is real: clip c's frame i
            assert torch.equal(batch["history"][b, 0], latents[c, max(i - 1, 0)])
            slots = ctx.frames[b][ctx.mask[b]][:, 0, 0, 0]
            if ctx.levels[b, 0] > 0 or i <= 1:  # joint (context at level t) or frames 0 and 1: all real
                assert (slots < 1000).all()
                continue
            seen += 1
            frames = i + ctx.offsets[b][ctx.mask[b]]
            assert c != 0 and slots[0] == 16 * c  # the anchor: real
            assert torch.equal(slots[1:], 1000 + 16 * c + frames[1:].float())
    assert seen > 20


def test_own_context_needs_an_adapter_to_generate_with(tiny_model, video_folder, tmp_path):
    with pytest.raises(VidgenError, match="own_context: got 0.5; expected 0 unless --init-adapter"):
        config(tiny_model, video_folder, tmp_path, own_context=0.5).validate()
    with pytest.raises(VidgenError, match="own_clips: got -1"):
        config(tiny_model, video_folder, tmp_path, own_clips=-1).validate()


def test_rollouts_are_what_the_pipeline_generates_from_the_first_frame(pipe):
    """An own video is exactly the pipeline's continuation of the clip's real frame 0, frame for frame."""
    import numpy as np

    from vidgen.own_frames import rollouts

    from .conftest import moving_squares

    video, caption = moving_squares(1, frames=4)[0]
    options = dict(num_frames=4, num_inference_steps=3, guidance_scale=3.0, scheduler="dpm++", start="previous",
                   strength=0.75)
    expected = np.stack(list(pipe.stream(caption, video=video[:1], generator=torch.Generator().manual_seed(3),
                                         **options)))
    # frame 0 encoded alone, as the pipeline encodes a given frame (a batch of 4 rounds differently)
    latents = torch.cat([pipe.encode_frames(video[:1]), pipe.encode_frames(video[1:])])[None]
    # a channels-last frame 0 (the permuted uint8 view) would round its continuation differently
    assert pipe.encode_frames(video[:1]).is_contiguous()
    own = rollouts(pipe, latents, pipe.encode_prompt(caption), pipe._config(caption, options),
                   torch.Generator().manual_seed(3))
    assert torch.equal(own[0, 0], latents[0, 0])
    decoded = np.stack([pipe.decode(x[None])[0] for x in own[0]])  # one at a time, as the pipeline does
    assert np.array_equal(decoded, expected), np.abs(decoded.astype(int) - expected).max()
    assert not torch.allclose(own[0, 1:], latents[0, 1:])


def test_own_context_training_resumes_exactly_without_its_cache(pipe, tiny_model, video_folder, tmp_path):
    """The own videos are generated with the init adapter (and its generation_config.json) whether a run starts or
    resumes, so 2 steps + resume (its cache deleted) + 2 steps equal 4 steps in one go."""
    from .conftest import perturb

    adapter = pipe.denoiser.adapter.__class__.for_unet(pipe.denoiser.unet, num_tokens=4, width=32)
    perturb(adapter, seed=2)
    adapter.save_pretrained(tmp_path / "init")
    (tmp_path / "init/generation_config.json").write_text(json.dumps({"num_inference_steps": 2}))
    kw = dict(init_adapter=str(tmp_path / "init"), own_context=1.0, own_clips=3, joint_fraction=0.0)
    train(config(tiny_model, video_folder, tmp_path / "a", **kw))
    train(config(tiny_model, video_folder, tmp_path / "b", steps=2, **kw))
    caches = list((tmp_path / "b/cache").glob("own-*.safetensors"))
    assert len(caches) == 1 and load_file(caches[0])["videos"].shape[0] == 3
    caches[0].unlink()
    train(config(tiny_model, video_folder, tmp_path / "b", steps=4, **kw), resume=True)
    name = "adapter/diffusion_pytorch_model.safetensors"
    a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_forced_frames_are_what_the_pipeline_generates_from_the_real_frames_before(pipe):
    """Own frame j (`own_from` previous) is the pipeline's next frame after the real frames 0 … j−1 (to a level of
    rounding: the pipeline encodes the given frames in one batch)."""
    import numpy as np

    from vidgen.own_frames import teacher_forced

    from .conftest import moving_squares

    video, caption = moving_squares(1, frames=4, seed=1)[0]
    options = dict(num_inference_steps=3, guidance_scale=3.0, scheduler="dpm++", start="previous", strength=0.75)
    latents = pipe.encode_frames(video)[None]
    own = teacher_forced(pipe, latents, pipe.encode_prompt(caption), pipe._config(caption, options),
                         torch.Generator().manual_seed(0), chunk=1)
    assert torch.equal(own[0, 0], latents[0, 0])
    for j in range(1, 4):  # chunk 1: frame j's noise is the generator's j-th draw after j − 1 frames' draws
        gen = torch.Generator().manual_seed(0)
        if j > 1:
            teacher_forced(pipe, latents[:, :j], pipe.encode_prompt(caption), pipe._config(caption, options), gen,
                           chunk=1)
        *_, last = pipe.stream(caption, video=video[:j], generator=gen, num_frames=j + 1, **options)
        assert np.abs(pipe.decode(own[0, j][None])[0].astype(int) - last).max() <= 1
