"""A run folder is one run: locked while it trains, cleared of an earlier training's artifacts, its checkpoints
tied to its config.yaml, and a run that did not finish refused unless its checkpoint is named."""

import json
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from seqrec import cli, predict, runfolder
from seqrec import train as train_command
from seqrec.config import load_config
from seqrec.errors import UserError
from seqrec.run import Run, RunError
from seqrec.train import train

TINY = ["preset=tiny", "train.progress_bar=false"]


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def test_a_finished_run_is_complete_and_its_checkpoints_carry_the_config_digest(run_copy):
    assert runfolder.state(run_copy)["state"] == "complete"
    digest = runfolder.config_digest((run_copy / "config.yaml").read_text())
    for name in ("best.ckpt", "last.ckpt"):
        hp = torch.load(run_copy / "checkpoints" / name, weights_only=True)["hyper_parameters"]
        assert hp["config_digest"] == digest
    assert not (run_copy / runfolder.LOCK).exists()


def test_a_run_that_did_not_finish_is_refused_unless_its_checkpoint_is_named(run_copy, capsys):
    runfolder.set_state(load_config([f"run.dir={run_copy}"]).run, "training")
    with pytest.raises(RunError, match="did not finish training .state 'training' since .*pass ckpt=best or ckpt=last"):
        Run.load(load_config([f"run.dir={run_copy}"]))
    assert Run.load(load_config([f"run.dir={run_copy}", "ckpt=best"])).ckpt.name == "best.ckpt"
    assert Run.load(load_config([f"run.dir={run_copy}", "ckpt=last"])).ckpt.name == "last.ckpt"
    assert "did not finish training: decoding with its last checkpoint as asked" in capsys.readouterr().out
    with pytest.raises(RunError, match="ckpt=x.ckpt: a trained run decodes with ckpt=best or ckpt=last"):
        Run.load(load_config([f"run.dir={run_copy}", "ckpt=x.ckpt"]))


def test_a_checkpoint_read_with_another_config_is_refused(run_copy):
    config = run_copy / "config.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 43"))
    with pytest.raises(RunError, match=r"best\.ckpt was written by another training than .*config\.yaml"):
        Run.load(load_config([f"run.dir={run_copy}"]))


def test_training_again_without_refit_removes_the_earlier_refit(run_copy, tiny_synth, one_thread, capsys):
    shutil.copy(run_copy / "checkpoints" / "best.ckpt", run_copy / "checkpoints" / "refit.ckpt")  # an earlier refit
    assert Run.load(load_config([f"run.dir={run_copy}"])).ckpt.name == "refit.ckpt"
    before = (run_copy / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    train(load_config([f"data.dir={tiny_synth}", f"run.dir={run_copy}", *TINY, "train.refit=false",
                       "train.max_epochs=1"]))
    assert "removed what an earlier training left: checkpoints/best.ckpt, checkpoints/last.ckpt, " \
           "checkpoints/refit.ckpt, state.json" in capsys.readouterr().out
    assert not (run_copy / "checkpoints" / "refit.ckpt").exists()
    assert (run_copy / "checkpoints" / "best.ckpt").stat().st_mtime_ns != before
    assert Run.load(load_config([f"run.dir={run_copy}"])).ckpt.name == "best.ckpt"  # the new run's own


def test_a_live_lock_refuses_a_second_training_and_a_dead_one_is_taken_over(run_copy, tiny_synth):
    lock = run_copy / runfolder.LOCK
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    cfg = load_config([f"data.dir={tiny_synth}", f"run.dir={run_copy}", *TINY])
    with pytest.raises(UserError, match=r"is being trained by pid 1 on elsewhere since then: wait for it"):
        train(cfg)
    assert (run_copy / "checkpoints" / "best.ckpt").exists()  # nothing touched
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "then"}))
    with pytest.warns(UserWarning, match="taking over a stale lock"), runfolder.training(cfg.run, resume=True):
        assert json.loads(lock.read_text())["pid"] != int(dead.stdout)
    assert not lock.exists()


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, tiny_synth, capsys):
    (tmp_path / "file").write_text("x")
    for command in (predict, train_command):
        assert cli.run(command.COMMAND, command.main, [f"data.dir={tiny_synth}", f"run.dir={tmp_path / 'file'}"]) == 2
        assert capsys.readouterr().err == f"error: run.dir={tmp_path / 'file'} is a file, not a folder; choose " \
                                          "another run.dir\n"


def test_a_run_keeps_its_id_maps(run_copy, tiny_synth):
    from seqrec.data.dataset import load_dataset

    run = Run.load(load_config([f"run.dir={run_copy}"]))
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    assert run.item_map is not None and (run.item_map.ids == ds.item_map.ids).all() and run.item_map.first == 1
