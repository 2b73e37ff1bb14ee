"""The trainer on tiny settings: updates, exact resume, non-finite losses,
distributed runs and backend equivalence."""

import textwrap

import pytest
import torch

import fastgram
from fastgram import data
from fastgram.train import TrainConfig, Trainer, TrainingDiverged, checkpoint, losses
from helpers import run_two_ranks

CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]
TINY = dict(size=32, batch_size=2, ngf=4, ndf=4, style_dim=4, n_res_blocks=1, num_scales=1,
            vgg_weights=None, ema_decay=0.5, log_every=1, sample_every=2, checkpoint_every=2,
            style_weight=1e-3, content_weight=1e-2)


def tiny_trainer(out_dir, **overrides):
    return Trainer(TrainConfig(**{**TINY, **overrides}), CONTENT, STYLE, out_dir, quiet=True)


def parameters(trainer):
    modules = {"g": trainer.generator, "e": trainer.style_encoder, "d": trainer.discriminator}
    return {f"{k}.{n}": p.detach().clone() for k, m in modules.items()
            for n, p in m.named_parameters()}


def test_one_step_changes_every_trainable_parameter_and_no_vgg_parameter(tmp_path):
    trainer = tiny_trainer(tmp_path, r1_gamma=1.0)
    before = parameters(trainer)
    vgg_before = {n: p.clone() for n, p in trainer.vgg.named_parameters()}
    ema_before = {n: p.clone() for n, p in trainer.generator_ema.shadow.named_parameters()}
    metrics = trainer.step()
    after = parameters(trainer)
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, f"not updated: {unchanged}"
    for name, p in trainer.vgg.named_parameters():
        assert not p.requires_grad and torch.equal(p, vgg_before[name]), name
    assert any(not torch.equal(p, ema_before[n])
               for n, p in trainer.generator_ema.shadow.named_parameters())
    for key in ("loss_d", "loss_g", "adv", "content", "style", "style_rec", "r1",
                "grad_norm_d", "grad_norm_g"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["r1"] > 0 and metrics["step"] == 1


def test_resume_continues_exactly(tmp_path):
    straight = tiny_trainer(tmp_path / "a")
    straight.fit(4)
    first = tiny_trainer(tmp_path / "b")
    first.fit(2)
    resumed = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b", quiet=True, resume=True)
    assert resumed.step_count == 2
    resumed.fit(4)
    a, b = parameters(straight), parameters(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ema_a = straight.generator_ema.shadow.state_dict()
    for name, value in resumed.generator_ema.shadow.state_dict().items():
        assert torch.equal(value, ema_a[name]), name


def test_checkpoint_holds_plain_values_and_loads_weights_only(tmp_path):
    trainer = tiny_trainer(tmp_path)
    trainer.fit(2)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and state["fastgram_version"] == fastgram.__version__
    assert state["config"]["size"] == 32
    assert set(state["rng"]) >= {"python", "numpy", "torch", "cuda", "data"}
    assert (tmp_path / "samples" / "latest.png").is_file()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"loss_g"' in lines[0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_non_finite_losses_skip_steps_then_stop(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, max_bad_steps=3)
    trainer.fit(2)
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    before = parameters(trainer)
    real_style_loss = losses.style_loss
    monkeypatch.setattr(
        losses, "style_loss", lambda *a, **k: real_style_loss(*a, **k) * float("nan")
    )
    with pytest.warns(RuntimeWarning, match="non-finite"):
        metrics = trainer.step()
    assert metrics["skipped"] and trainer.step_count == 2
    after = parameters(trainer)
    assert all(torch.equal(before[n], after[n]) for n in before)
    with pytest.warns(RuntimeWarning), pytest.raises(TrainingDiverged, match="intact"):
        trainer.fit(6)
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved
    # A good step resets the count.
    monkeypatch.setattr(losses, "style_loss", real_style_loss)
    assert not trainer.step().get("skipped")
    assert trainer.bad_steps == 0


def test_reference_and_auto_backends_train_the_same(tmp_path):
    """A few steps from one seed give the same losses and parameters with the
    reference backend and with auto (the fused kernels where they run)."""
    runs = {}
    for backend in ("reference", "auto"):
        with fastgram.use_backend(backend):
            trainer = tiny_trainer(tmp_path / backend)
            history = [trainer.step() for _ in range(3)]
        runs[backend] = (history, parameters(trainer))
    (hist_ref, params_ref), (hist_auto, params_auto) = runs["reference"], runs["auto"]
    for step_ref, step_auto in zip(hist_ref, hist_auto):
        for key in ("loss_d", "loss_g", "content", "style"):
            assert step_auto[key] == pytest.approx(step_ref[key], rel=1e-4, abs=1e-6), key
    # Adam moves each parameter by about lr a step whatever the gradient's
    # size, so a rounding difference in a near-zero gradient can flip part
    # of a step: parameters agree to 5% of the largest possible movement.
    movement = TrainConfig().lr * len(hist_ref)
    for name, value in params_ref.items():
        assert torch.allclose(params_auto[name], value, rtol=1e-4, atol=0.05 * movement), name


def test_bad_config_values_name_the_field():
    for field, value in (("size", 30), ("batch_size", 0), ("lr", 0.0), ("adv_loss", "wgan"),
                         ("style_layers", ("relu9_1",)), ("betas", (0.5, 1.0)),
                         ("ema_decay", 1.0), ("style_layer_weights", (1.0,))):
        with pytest.raises(ValueError, match=f"^{field}:"):
            TrainConfig(**{field: value})


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from fastgram import data
    from fastgram.train import TrainConfig, Trainer, distributed
    contents = [data.image_path(n) for n in data.CONTENT_IMAGES]
    styles = [data.image_path(n) for n in data.STYLE_IMAGES]
    config = TrainConfig(size=32, batch_size=2, ngf=4, ndf=4, ARCHITECTURE,
                         num_scales=1, vgg_weights=None, sample_every=3, checkpoint_every=3,
                         style_weight=1e-3, content_weight=1e-2)
    trainer = Trainer(config, contents, styles, sys.argv[1], quiet=True)
    trainer.fit(3)
    flat = torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.style_encoder,
                      trainer.discriminator) for p in m.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        assert all(torch.equal(gathered[0], g) for g in gathered), "ranks differ"
        print("RANKS_IDENTICAL", dist.get_world_size(), flush=True)
    distributed.teardown()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", [
    "style_dim=4, n_res_blocks=1",
    'generator="adain"',  # its style encoder trains nothing: not wrapped in DDP
])
def test_two_process_distributed_run_keeps_ranks_identical(tmp_path, architecture):
    run_two_ranks(DISTRIBUTED_SCRIPT.replace("ARCHITECTURE", architecture), tmp_path,
                  "RANKS_IDENTICAL 2")
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    checkpoint.load(tmp_path / "run" / "checkpoint.pt")


def test_resume_from_a_state_that_does_not_fit_names_it(tmp_path):
    trainer = tiny_trainer(tmp_path / "run")
    state = trainer.state_dict()
    other = tiny_trainer(tmp_path / "other")
    bad = {
        "a model file": ({"format": 1, "config": state["config"], "generator": {}},
                         "is a model file .* cannot resume training"),
        "no step": ({k: v for k, v in state.items() if k != "step"}, "no 'step' entry"),
        "no optimizer": ({**state, "optimizers": {"g": state["optimizers"]["g"]}},
                         "no 'optimizers.d' entry"),
        "no ema": ({**state, "models": {k: v for k, v in state["models"].items()
                                        if k != "generator_ema"}},
                   "no 'models.generator_ema' entry"),
        "other sizes": ({**state, "config": {**state["config"], "ngf": 8}},
                        r"other network sizes: ngf=8 \(this run: 4\)"),
        "a list": ([state], "holds a list"),
    }
    for name, (value, message) in bad.items():
        with pytest.raises(ValueError, match=f"^checkpoint: .*{message}"):
            other.load_state(value, "x.pt")
