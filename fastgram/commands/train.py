"""``fastgram train``: train a style-transfer GAN on two image folders."""

from __future__ import annotations

import argparse

from fastgram.commands import CommandError
from fastgram.commands import arguments as types
from fastgram.train import TrainConfig, Trainer, TrainingDiverged, distributed
from fastgram.models.adain_generator import ADAIN_LAYERS
from fastgram.train.config import GENERATORS, STYLE_ENCODERS
from fastgram.train.losses import ADVERSARIAL_LOSSES, STYLE_LOSSES

HELP = "train a style-transfer GAN on a folder of content and a folder of style images"
DEFAULTS = TrainConfig()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--content", required=True, type=types.existing_dir,
                        help="folder of content photos (searched recursively)")
    parser.add_argument("--style", required=True, type=types.existing_dir,
                        help="folder of style images (searched recursively)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint, samples, metrics")
    parser.add_argument("--steps", type=types.positive_int, default=DEFAULTS.steps)
    parser.add_argument("--size", type=types.positive_int, default=DEFAULTS.size,
                        help="training crop size (a multiple of 4)")
    parser.add_argument("--batch-size", type=types.positive_int, default=DEFAULTS.batch_size)
    parser.add_argument("--lr", type=types.positive_float, default=DEFAULTS.lr)
    parser.add_argument("--style-weight", type=types.non_negative_float,
                        default=DEFAULTS.style_weight)
    parser.add_argument("--style-loss", choices=STYLE_LOSSES, default=DEFAULTS.style_loss,
                        help="gram: Gram matrices; moment: per-channel mean and standard "
                             "deviation (the AdaIN paper's loss)")
    parser.add_argument("--content-weight", type=types.non_negative_float,
                        default=DEFAULTS.content_weight)
    parser.add_argument("--style-rec-weight", type=types.non_negative_float,
                        default=DEFAULTS.style_rec_weight,
                        help="weight of the style code of the output matching the style's")
    parser.add_argument("--adv-weight", type=types.non_negative_float, default=DEFAULTS.adv_weight)
    parser.add_argument("--adv-loss", choices=ADVERSARIAL_LOSSES, default=DEFAULTS.adv_loss)
    parser.add_argument("--r1-gamma", type=types.non_negative_float, default=DEFAULTS.r1_gamma)
    parser.add_argument("--generator", choices=GENERATORS, default=DEFAULTS.generator,
                        help="adain: the frozen VGG19 as content encoder, AdaIN to the style's "
                             "statistics, a learned decoder (any style); munit: learned encoder "
                             "and AdaIN decoder driven by a style code (default)")
    parser.add_argument("--adain-layer", choices=ADAIN_LAYERS, default=DEFAULTS.adain_layer,
                        help="the VGG19 layer the adain generator works at")
    parser.add_argument("--ngf", type=types.positive_int, default=DEFAULTS.ngf,
                        help="generator width")
    parser.add_argument("--ndf", type=types.positive_int, default=DEFAULTS.ndf,
                        help="discriminator width")
    parser.add_argument("--style-dim", type=types.positive_int, default=None,
                        help="style code length (munit, default 8; adain: its statistics)")
    parser.add_argument("--style-size", type=types.positive_int, default=None,
                        help="shorter side style images are encoded at when stylising "
                             "(default: --size)")
    parser.add_argument("--n-res-blocks", type=types.non_negative_int,
                        default=DEFAULTS.n_res_blocks)
    parser.add_argument("--style-encoder", choices=STYLE_ENCODERS, default=None,
                        help="munit: learned (MUNIT's encoder from scratch, default) or vgg (an "
                             "MLP on frozen VGG19 statistics); adain: statistics (its only one)")
    parser.add_argument("--style-augment", type=types.unit_float, default=DEFAULTS.style_augment,
                        help="strength in [0, 1] of random palette changes of style crops")
    parser.add_argument("--tv-weight", type=types.non_negative_float, default=DEFAULTS.tv_weight)
    parser.add_argument("--ema-decay", type=types.unit_float, default=DEFAULTS.ema_decay)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--amp-cpu", action="store_true",
                        help="bf16 autocast on a CPU with native bf16 (AMX, AVX512-BF16), "
                             "for training and for stylising with the model")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--log-every", type=types.positive_int, default=DEFAULTS.log_every)
    parser.add_argument("--sample-every", type=types.positive_int, default=DEFAULTS.sample_every)
    parser.add_argument("--checkpoint-every", type=types.positive_int,
                        default=DEFAULTS.checkpoint_every)
    parser.add_argument("--tensorboard", action="store_true",
                        help="also log to TensorBoard (if installed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        size=args.size, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        style_weight=args.style_weight, style_loss=args.style_loss, content_weight=args.content_weight,
        adv_weight=args.adv_weight, style_rec_weight=args.style_rec_weight, adv_loss=args.adv_loss, r1_gamma=args.r1_gamma,
        generator=args.generator, adain_layer=args.adain_layer, style_size=args.style_size,
        ngf=args.ngf, ndf=args.ndf, style_dim=args.style_dim, seed=args.seed,
        n_res_blocks=args.n_res_blocks, style_encoder=args.style_encoder,
        style_augment=args.style_augment, tv_weight=args.tv_weight, ema_decay=args.ema_decay,
        amp=not args.no_amp, amp_cpu=args.amp_cpu, compile=args.compile, log_every=args.log_every,
        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    types.check_backend()
    types.output_dir(args.out)
    # Bad values, checkpoints that do not fit and faults are worded by
    # fastgram.commands.errors in cli.main.
    trainer = Trainer(config, args.content, args.style, args.out, device=args.device,
                      resume=args.resume, quiet=args.quiet, tensorboard=args.tensorboard)
    try:
        metrics = trainer.fit()
    except TrainingDiverged as exc:
        raise CommandError(str(exc)) from None
    finally:
        distributed.teardown()
    if trainer.is_main:
        summary = ", ".join(f"{k}={metrics[k]:.4g}" for k in ("loss_d", "loss_g", "content", "style")
                            if k in metrics)
        print(f"trained to step {trainer.step_count}: {summary}")
        print(f"checkpoint: {trainer.out_dir / 'checkpoint.pt'}")
        print(f"samples:    {trainer.out_dir / 'samples' / 'latest.png'}")
    return 0
