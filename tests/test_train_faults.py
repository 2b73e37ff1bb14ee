"""Training faults: signals, killed and failed saves, resumed runs."""

import json
import os
import signal
import tempfile
import textwrap

import pytest
import torch

from fastgram import cli, data
from fastgram.train import TrainConfig, Trainer, checkpoint
from fastgram.train.interrupts import TrainingInterrupted
from helpers import run_two_ranks

CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]
TINY = dict(size=16, batch_size=1, ngf=4, ndf=4, style_dim=4, n_res_blocks=1, num_scales=1,
            vgg_weights=None, log_every=1, sample_every=100, checkpoint_every=100)


def tiny_trainer(out_dir, resume=False, **overrides):
    return Trainer(TrainConfig(**{**TINY, **overrides}), CONTENT, STYLE, out_dir, quiet=True,
                   resume=resume)


def signal_at(trainer, monkeypatch, step, signums):
    """Deliver ``signums`` to this process during step number ``step``."""
    real_step = trainer.step

    def step_then_signal():
        metrics = real_step()
        if trainer.step_count == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return metrics

    monkeypatch.setattr(trainer, "step", step_then_signal)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_at_the_current_step_then_stops(tmp_path, monkeypatch,
                                                                    signum):
    trainer = tiny_trainer(tmp_path)
    signal_at(trainer, monkeypatch, 3, [signum])
    with pytest.raises(TrainingInterrupted, match="at step 3; checkpoint saved") as info:
        trainer.fit(10)
    assert info.value.signum == signum and info.value.step == 3
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 3
    # The handlers are gone again: the process's own ones are back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_aborts_at_once(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path)
    signal_at(trainer, monkeypatch, 2, [signal.SIGINT, signal.SIGINT])
    with pytest.raises(KeyboardInterrupt, match="second SIGINT") as info:
        trainer.fit(10)
    assert not isinstance(info.value, TrainingInterrupted)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_the_command_says_where_it_saved_and_exits_128_plus_the_signal(tmp_path, monkeypatch,
                                                                       capsys):
    real_step = Trainer.step

    def step_then_term(self):
        metrics = real_step(self)
        if self.step_count == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    monkeypatch.setattr(Trainer, "step", step_then_term)
    folder = tmp_path / "images"
    folder.mkdir()
    for path in CONTENT[:1] + STYLE[:1]:
        (folder / path.name).write_bytes(path.read_bytes())
    status = cli.main(["train", "--content", str(folder), "--style", str(folder), "--out",
                       str(tmp_path / "run"), "--steps", "5", "--size", "16", "--batch-size",
                       "1", "--ngf", "4", "--ndf", "4", "--style-dim", "4", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 128 + signal.SIGTERM
    assert err.startswith("fastgram train: interrupted by SIGTERM at step 2; checkpoint saved")
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_the_next_save_removes_temporary_files_of_killed_saves(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".checkpoint.pt.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.x.tmp"  # another file's: not ours to remove
    other.write_bytes(b"")
    checkpoint.save({"step": 1}, tmp_path / "checkpoint.pt")
    assert not any(path.exists() for path in stale) and other.exists()


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = checkpoint.save({"step": 1, "w": torch.ones(3)}, tmp_path / "checkpoint.pt")
    before = path.read_bytes()
    real_mkstemp = tempfile.mkstemp

    def on_full_disk(*args, **kwargs):  # torch.save then writes to a full disk, for real
        fd, tmp = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), tmp

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", on_full_disk)
    with pytest.raises(checkpoint.DiskFullError, match="disk full .*previous checkpoint is intact"):
        checkpoint.save({"step": 2, "w": torch.zeros(100_000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def logged_steps(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_resume_does_not_duplicate_metrics_of_steps_run_again(tmp_path, monkeypatch):
    first = tiny_trainer(tmp_path)
    first.fit(2)  # checkpoint at step 2
    # Steps 3 and 4 are logged, then the run dies before its next checkpoint.
    monkeypatch.setattr(first, "save_checkpoint", lambda: None)
    first.fit(4)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 5, "loss')  # a record torn by the kill
    assert (tmp_path / "metrics.jsonl").read_text().count('"step"') == 5
    resumed = tiny_trainer(tmp_path, resume=True)
    assert resumed.step_count == 2 and logged_steps(tmp_path) == [1, 2]
    resumed.fit(4)
    assert logged_steps(tmp_path) == [1, 2, 3, 4]


def test_changed_settings_on_resume_are_applied_with_a_notice(tmp_path, capsys):
    tiny_trainer(tmp_path).fit(1)
    resumed = tiny_trainer(tmp_path, resume=True, lr=0.01, style_weight=2.0)
    assert [g["lr"] for g in resumed.opt_g.param_groups] == [0.01]
    assert [g["lr"] for g in resumed.opt_d.param_groups] == [0.01]
    err = capsys.readouterr().err
    assert "resume: settings changed since the checkpoint, applied from step 2 on" in err
    assert "lr 0.0002 -> 0.01" in err and "style_weight 3e-05 -> 2.0" in err
    # The same settings again: no notice, the saved learning rate kept.
    same = tiny_trainer(tmp_path, resume=True)
    assert same.reporter.notices == []
    assert [g["lr"] for g in same.opt_g.param_groups] == [TrainConfig().lr]


DISTRIBUTED_RESUME = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from fastgram import data
    from fastgram.train import TrainConfig, Trainer, distributed
    contents = [data.image_path(n) for n in data.CONTENT_IMAGES]
    styles = [data.image_path(n) for n in data.STYLE_IMAGES]
    config = TrainConfig(size=16, batch_size=1, ngf=4, ndf=4, style_dim=4, n_res_blocks=1,
                         num_scales=1, vgg_weights=None, sample_every=100, checkpoint_every=100)
    first = Trainer(config, contents, styles, sys.argv[1], quiet=True)
    first.fit(2)
    dist.barrier()  # rank 0's final checkpoint is written before anyone resumes from it
    own = first.data_rng.get_state()
    resumed = Trainer(config, contents, styles, sys.argv[1], quiet=True, resume=True)
    assert resumed.step_count == 2
    assert torch.equal(resumed.data_rng.get_state(), own), "rank lost its own data order"
    batch = resumed.content_data.sample(2, resumed.data_rng).flatten()
    gathered = [torch.empty_like(batch) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, batch)
    if dist.get_rank() == 0:
        assert not torch.equal(gathered[0], gathered[1]), "both ranks drew the same batch"
        print("RANKS_DRAW_THEIR_OWN", flush=True)
    del first, resumed  # their DDP reducers hold gloo work: free them while the group still exists
    distributed.teardown()
    """
)


@pytest.mark.slow
def test_distributed_resume_gives_every_rank_its_own_data_order(tmp_path):
    run_two_ranks(DISTRIBUTED_RESUME, tmp_path, "RANKS_DRAW_THEIR_OWN")
