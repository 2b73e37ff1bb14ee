"""The training loop of the style-transfer GAN.

Each step draws a content batch and a style batch, encodes the style,
generates, updates the discriminator (real = style images, fake = outputs),
then updates the generator and the style encoder on

    adv_weight * L_adv + content_weight * L_content + style_weight * L_style
    + style_rec_weight * L_style_rec + tv_weight * L_tv

(see :mod:`fastgram.train.losses`). EMA copies of the generator and the
style encoder make the samples and are what :class:`StyleTransferGAN`
stylises with.
"""

from __future__ import annotations

import math
import pathlib
import signal
import time
import warnings
from typing import Dict, Optional

import torch

from fastgram import precision, validation
from fastgram._version import __version__
from fastgram.train import (augment, checkpoint, distributed, interrupts, losses, networks,
                            reporting)
from fastgram.models.vgg_style_encoder import channel_statistics
from fastgram.train.config import TrainConfig
from fastgram.train.data import ImageDataset, Source
from fastgram.train.ema import EMA

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss."""


def resolve_device(device) -> torch.device:
    """``"auto"`` means the CUDA device when there is one, else the CPU. A
    CUDA device that is not there is a ValueError now, not a driver error at
    the first tensor moved to it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device: {device!r} was requested but no CUDA device is visible here "
                "(torch.cuda.is_available() is False); use 'cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device: {device!r} was requested but only {count} CUDA "
                             f"device(s) are visible (cuda:0 to cuda:{count - 1})")
    elif resolved.type != "cpu":
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return resolved


class Trainer:
    """Trains a generator, a style encoder and a discriminator.

    Args:
        config: the run's :class:`TrainConfig`.
        content, style: directories or lists of image files.
        out_dir: where checkpoints, samples and ``metrics.jsonl`` go.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (under ``torchrun``,
            each process takes its local CUDA device).
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        quiet: no progress bar.
        tensorboard: also log to TensorBoard when it is installed.
    """

    def __init__(
        self,
        config: TrainConfig,
        content: Source,
        style: Source,
        out_dir,
        *,
        device="auto",
        resume: bool = False,
        quiet: bool = False,
        tensorboard: bool = False,
    ):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.dist = distributed.setup()
        self.device = self.dist.device if self.dist.enabled else resolve_device(device)
        self.out_dir = pathlib.Path(out_dir)
        self.is_main = self.dist.rank == 0
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(config.seed)
        self.content_data = ImageDataset(content, config.size, name="content")
        self.style_data = ImageDataset(style, config.size, name="style")
        # Each rank draws its own batches: the distributed sampler is the seed.
        self.data_rng = torch.Generator().manual_seed(config.seed * 1000 + self.dist.rank)

        self.generator = networks.build_generator(config).to(self.device)
        self.style_encoder = networks.build_style_encoder(config).to(self.device)
        self.discriminator = networks.build_discriminator(config).to(self.device)
        self.vgg = networks.build_vgg(config).to(self.device)
        self.generator_ema = EMA(self.generator, config.ema_decay)
        self.style_encoder_ema = EMA(self.style_encoder, config.ema_decay)

        g_params = list(self.generator.parameters()) + list(self.style_encoder.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=config.lr_d or config.lr, betas=config.betas
        )
        self.step_count = 0
        self.bad_steps = 0

        # What the step runs: DDP wrappers and compiled graphs around the
        # modules above (which stay the ones saved and averaged). A DDP module
        # must run one forward per backward, so the second uses in a step (the
        # style encoder on the output, the discriminator judging the output for
        # the generator) call the plain modules; their gradients still reach
        # the parameters before DDP's hooks all-reduce them.
        maybe_compile = torch.compile if config.compile else (lambda m: m)
        self._g = maybe_compile(self.dist.wrap(self.generator))
        self._e = maybe_compile(self.dist.wrap(self.style_encoder))
        self._d = maybe_compile(self.dist.wrap(self.discriminator))
        self._e_again = maybe_compile(self.style_encoder) if self.dist.enabled else self._e
        self._d_again = maybe_compile(self.discriminator) if self.dist.enabled else self._d
        self._vgg = maybe_compile(self.vgg)
        self._shared_statistics = networks.shares_style_statistics(config)
        self._statistics_layers = networks.statistics_layers(config)

        sample_rng = torch.Generator().manual_seed(config.seed + 7)
        count = min(4, config.batch_size)
        self.sample_content = self.content_data.sample(count, sample_rng)
        self.sample_style = self.style_data.sample(count, sample_rng)

        self.reporter = reporting.Reporter(
            self.out_dir, enabled=self.is_main, quiet=quiet, tensorboard=tensorboard
        )
        if resume and (self.out_dir / CHECKPOINT_NAME).is_file():
            path = self.out_dir / CHECKPOINT_NAME
            self.load_state(checkpoint.load(path), path)

    # -- one step ---------------------------------------------------------

    def _autocast(self):
        return precision.autocast(self.device, cuda=self.config.amp, cpu=self.config.amp_cpu)

    def _style_targets(self, style_features: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return losses.style_targets(style_features, self.config.style_layers,
                                    self.config.style_loss)

    def _style_code(self, encoder, images: torch.Tensor, features) -> torch.Tensor:
        """``encoder``'s codes of ``images``, from the loss network's VGG19
        ``features`` of them when the encoder takes those statistics."""
        if features is None or not self._shared_statistics:
            return encoder(images)
        return encoder(channel_statistics([features[k] for k in self._statistics_layers]))

    def _content_targets(self, content_features: Dict[str, torch.Tensor],
                         code: torch.Tensor) -> Dict[str, torch.Tensor]:
        """What the output's VGG19 features are compared with: the
        content's, except at the "adain" generator's layer, where the target
        is the content's features with the style's statistics (AdaIN), so
        that the decoder learns to render stylised features (Huang &
        Belongie) instead of undoing the style."""
        if self.config.generator != "adain":
            return content_features
        layer = self.config.adain_layer
        with torch.no_grad():
            params = self.generator.style_params(code.detach(), code.shape[0])
            target = self.generator.transfer(content_features[layer], params)
        return {**content_features, layer: target}

    def step(self) -> Dict[str, float]:
        """One discriminator update and one generator + style-encoder update.

        Both losses are computed from the same forward pass before either
        network is updated (simultaneous updates), so a non-finite value in
        either is caught before anything changes.

        Returns the step's metrics. A step whose losses are not finite changes
        nothing (no optimizer step, no EMA update) and is counted; too many
        in a row raise :class:`TrainingDiverged`.
        """
        cfg = self.config
        content = self.content_data.sample(cfg.batch_size, self.data_rng).to(self.device)
        style = self.style_data.sample(cfg.batch_size, self.data_rng)
        style = augment.colour_jitter(style, self.data_rng, cfg.style_augment).to(self.device)

        style_features = None
        with self._autocast():
            if self._shared_statistics:
                with torch.no_grad():
                    style_features = self._vgg(style)
            code = self._style_code(self._e, style, style_features)
            fake = self._g(content, code)

        # Discriminator: real and fake in one forward pass.
        self.discriminator.requires_grad_(True)
        real = style.detach().requires_grad_(cfg.r1_gamma > 0)
        with self._autocast():
            logits = self._d(torch.cat([real, fake.detach()]))
            d_real = [t[: cfg.batch_size] for t in logits]
            d_fake = [t[cfg.batch_size :] for t in logits]
            loss_d = losses.discriminator_loss(d_real, d_fake, cfg.adv_loss)
        r1 = torch.zeros((), device=self.device)
        if cfg.r1_gamma > 0:
            r1 = losses.r1_penalty([t.float() for t in d_real], real)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * r1

        # Generator and style encoder.
        self.discriminator.requires_grad_(False)
        with self._autocast():
            adv = losses.generator_loss(self._d_again(fake), cfg.adv_loss)
            out_features = self._vgg(fake)
            with torch.no_grad():
                content_features = self._vgg(content)
                if style_features is None:
                    style_features = self._vgg(style)
            content_term = losses.content_loss(
                out_features, self._content_targets(content_features, code), cfg.content_layers)
            style_term = losses.style_loss(
                {k: v.float() for k, v in out_features.items()},
                self._style_targets(style_features),
                cfg.style_layers,
                cfg.style_layer_weights,
                cfg.style_loss,
            )
            rec = losses.style_reconstruction_loss(
                self._style_code(self._e_again, fake, out_features), code)
            tv = losses.total_variation(fake) if cfg.tv_weight else torch.zeros((), device=fake.device)
            loss_g = (
                cfg.adv_weight * adv
                + cfg.content_weight * content_term
                + cfg.style_weight * style_term
                + cfg.style_rec_weight * rec
                + cfg.tv_weight * tv
            )

        metrics = {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "adv": adv.item(),
            "content": content_term.item(),
            "style": style_term.item(),
            "style_rec": rec.item(),
            "tv": tv.item(),
            "r1": r1.item(),
        }
        if not self.dist.all_true(all(math.isfinite(v) for v in metrics.values())):
            return self._skip_step(metrics)

        self.opt_d.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(True)
        loss_d.backward(inputs=list(self.discriminator.parameters()))
        metrics["grad_norm_d"] = _grad_norm(self.discriminator.parameters())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=[p for g in self.opt_g.param_groups for p in g["params"]])
        metrics["grad_norm_g"] = _grad_norm(
            p for g in self.opt_g.param_groups for p in g["params"]
        )
        if not (math.isfinite(metrics["grad_norm_d"]) and math.isfinite(metrics["grad_norm_g"])):
            return self._skip_step(metrics)
        self.opt_d.step()
        self.opt_g.step()
        self.generator_ema.update(self.generator)
        self.style_encoder_ema.update(self.style_encoder)
        self.bad_steps = 0
        self.step_count += 1
        metrics["step"] = self.step_count
        return metrics

    def _skip_step(self, metrics: Dict[str, float]) -> Dict[str, float]:
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        self.bad_steps += 1
        bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
        warnings.warn(
            f"step {self.step_count + 1}: non-finite values ({bad}); step skipped "
            f"({self.bad_steps} in a row, limit {self.config.max_bad_steps})",
            RuntimeWarning,
            stacklevel=2,
        )
        if self.bad_steps >= self.config.max_bad_steps:
            raise TrainingDiverged(
                f"{self.bad_steps} consecutive steps with non-finite losses; stopping. "
                f"The last good checkpoint in {self.out_dir} is intact."
            )
        metrics["skipped"] = True
        return metrics

    # -- the loop ---------------------------------------------------------

    def fit(self, steps: Optional[int] = None) -> Dict[str, float]:
        """Train until ``steps`` (default ``config.steps``) steps are done in
        total, counting those before a resume. Returns the last metrics."""
        if steps is not None:
            validation.integer(steps, "steps")
        total = self.config.steps if steps is None else steps
        metrics: Dict[str, float] = {}
        self.reporter.start(total, self.step_count)
        started = time.perf_counter()
        done_here = 0
        try:
            with interrupts.StopRequests() as stops:
                while self.step_count < total:
                    metrics = self.step()
                    # Every rank stops at the same step, whichever got the signal.
                    if self.dist.any_true(stops.signum is not None):
                        self._stop(stops.signum)
                    if metrics.get("skipped"):
                        continue
                    done_here += 1
                    metrics["images_per_s"] = (
                        done_here * self.config.batch_size * self.dist.world_size
                        / (time.perf_counter() - started)
                    )
                    step = self.step_count
                    self.reporter.progress(step, metrics)
                    if step % self.config.log_every == 0 or step == total:
                        self.reporter.log(step, metrics)
                    if step % self.config.sample_every == 0 or step == total:
                        self.save_samples()
                    if step % self.config.checkpoint_every == 0 or step == total:
                        self.save_checkpoint()
        finally:
            self.reporter.close()
        return metrics

    def _stop(self, signum: Optional[int]) -> None:
        """Save at the current step and raise TrainingInterrupted."""
        signum = signum or signal.SIGTERM  # a peer rank got it
        path = self.save_checkpoint() or self.out_dir / CHECKPOINT_NAME
        raise interrupts.TrainingInterrupted(
            f"interrupted by {signal.Signals(signum).name} at step {self.step_count}; "
            f"checkpoint saved to {str(path)!r}; continue with --resume (resume=True)",
            signum, self.step_count,
        )

    @torch.no_grad()
    def save_samples(self) -> Optional[pathlib.Path]:
        """Write the sample grid (rows: content | style | EMA output)."""
        if not self.is_main:
            return None
        content = self.sample_content.to(self.device)
        style = self.sample_style.to(self.device)
        output = self.generator_ema.shadow(content, self.style_encoder_ema.shadow(style))
        rows = [[c, s, o] for c, s, o in zip(content.cpu(), style.cpu(), output.float().cpu())]
        return self.reporter.save_grid(rows, self.step_count)

    # -- state --------------------------------------------------------------

    def state_dict(self) -> dict:
        """The whole training state as plain values. Under ``torchrun`` every
        rank must call it (it gathers each rank's data RNG state)."""
        data_states = self.dist.gather(self.data_rng.get_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "fastgram_version": __version__,
            "config": self.config.to_dict(),
            "step": self.step_count,
            "models": {
                "generator": self.generator.state_dict(),
                "style_encoder": self.style_encoder.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "generator_ema": self.generator_ema.shadow.state_dict(),
                "style_encoder_ema": self.style_encoder_ema.shadow.state_dict(),
            },
            "optimizers": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            # Each rank draws its own batches: one data RNG state per rank.
            "rng": {**checkpoint.rng_state(), "data": data_states[0],
                    "data_per_rank": data_states},
        }

    def load_state(self, state: dict, source="checkpoint") -> None:
        """Continue from ``state`` (what :meth:`state_dict` returned, read
        from ``source``). A state that does not fit this run's networks is a
        ValueError naming the entry."""
        checkpoint.require_mapping(state, source)
        if "models" not in state and "generator" in state:
            raise ValueError(
                f"checkpoint: {str(source)!r} is a model file (StyleTransferGAN.save: inference "
                "weights only), not a training checkpoint; it cannot resume training. Resume "
                "from the run folder's checkpoint.pt, or use the model file with stylize"
            )
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: {str(source)!r} has unsupported format "
                             f"{state.get('format')!r} (expected {CHECKPOINT_FORMAT})")
        saved = checkpoint.config_of(state, source)
        if networks.architecture(saved) != networks.architecture(self.config):
            differ = {k: (v, networks.architecture(self.config)[k])
                      for k, v in networks.architecture(saved).items()
                      if v != networks.architecture(self.config)[k]}
            shown = ", ".join(f"{k}={old!r} (this run: {new!r})" for k, (old, new) in differ.items())
            raise ValueError(
                f"checkpoint: {str(source)!r} was trained with other network sizes: {shown}; "
                "give the same values to resume, or start a new run in another folder"
            )
        step = checkpoint.entry(state, "step", int, source)
        rng = checkpoint.entry(state, "rng", dict, source)
        for key in ("python", "numpy", "torch", "cuda", "data"):
            checkpoint.entry(rng, key, (list, tuple, torch.Tensor), source)
        modules = (
            (self.generator, "models.generator"),
            (self.style_encoder, "models.style_encoder"),
            (self.discriminator, "models.discriminator"),
            (self.generator_ema.shadow, "models.generator_ema"),
            (self.style_encoder_ema.shadow, "models.style_encoder_ema"),
        )
        for module, key in modules:
            checkpoint.load_weights(module, checkpoint.entry(state, key, dict, source), key, source)
        for key, optimizer in (("g", self.opt_g), ("d", self.opt_d)):
            try:
                optimizer.load_state_dict(checkpoint.entry(state, f"optimizers.{key}", dict, source))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"checkpoint: optimizers.{key} in {str(source)!r} does not fit "
                                 f"this run's parameters ({exc})") from None
        self.step_count = step
        self._apply_changed_settings(saved)
        checkpoint.set_rng_state(rng)
        self.data_rng.set_state(self._data_rng_state(rng))
        # Steps after the checkpoint are run again: their old records go.
        self.reporter.forget_after(step)

    def _data_rng_state(self, rng: dict) -> torch.Tensor:
        """This rank's own data RNG state. A checkpoint from a run with
        another number of ranks (or from before per-rank states were saved,
        under torchrun) cannot give one: each rank then starts a fresh
        stream of its own, derived from the seed, the step and the rank."""
        per_rank = rng.get("data_per_rank")
        if isinstance(per_rank, list) and len(per_rank) == self.dist.world_size:
            return per_rank[self.dist.rank]
        if not self.dist.enabled:
            return rng["data"]
        self.reporter.notice(
            f"resume: the checkpoint holds the data order of {len(per_rank or [1])} rank(s), "
            f"this run has {self.dist.world_size}; each rank starts a fresh data order"
        )
        seed = self.config.seed * 1000 + self.dist.rank + 7919 * int(self.step_count)
        return torch.Generator().manual_seed(seed).get_state()

    def _apply_changed_settings(self, saved: TrainConfig) -> None:
        """Settings given for the resumed run that differ from the saved
        ones are applied from now on, with a notice listing them (the
        optimiser state loaded from the checkpoint carries the old learning
        rates and betas, so those are set again here)."""
        old, new = saved.to_dict(), self.config.to_dict()
        changed = [k for k in new if k != "steps" and old.get(k) != new[k]]
        for group in self.opt_g.param_groups:
            group["lr"], group["betas"] = self.config.lr, self.config.betas
        for group in self.opt_d.param_groups:
            group["lr"], group["betas"] = self.config.lr_d or self.config.lr, self.config.betas
        if changed:
            shown = ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
            note = ""
            if "seed" in changed:
                note = " (seed: the random state is restored from the checkpoint)"
            self.reporter.notice(f"resume: settings changed since the checkpoint, applied from "
                                 f"step {self.step_count + 1} on: {shown}{note}")

    def save_checkpoint(self) -> Optional[pathlib.Path]:
        state = self.state_dict()  # on every rank: it is collective
        if not self.is_main:
            return None
        return checkpoint.save(state, self.out_dir / CHECKPOINT_NAME)


def _grad_norm(parameters) -> float:
    grads = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return torch.stack(grads).norm().item()
