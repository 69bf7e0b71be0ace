"""End to end on the tiny synthetic preset: train.py, predict.py, seqrec.validate, resuming; a bf16 step on GPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from seqrec.config import RankConfig, load_config
from seqrec.data.dataset import build_dataset
from seqrec.data.sequences import build_sequences
from seqrec.errors import UserError
from seqrec.models.features import event_features
from seqrec.models.side import side_tables
from seqrec.ranking.rankers import load_ranker, ranker_features
from seqrec.run import Run
from seqrec.train import train
from seqrec.training.batches import TrainWindows
from seqrec.training.losses import sampled_ce, weighted_ce
from seqrec.training.module import SeqRecModule

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3  # training batches per epoch
TRAIN = ["preset=tiny", "train.log_every_n_steps=1", "train.refit=true"]


def run(*args: str, gpu: bool = False) -> subprocess.CompletedProcess:
    """A command line from the repository root; one torch thread keeps a busy 2-core machine responsive."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def counts_of(ds) -> np.ndarray:
    """Plays of each track in the log, PAD included: the popularity side table's input."""
    return np.bincount(ds.events["item"], minlength=ds.n_items + 1)


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # no arbitrary unpickling: a requirement


@pytest.fixture(scope="module")
def pipeline(tiny_synth, tmp_path_factory) -> dict:
    """Train one epoch, predict, validate, then resume the same run for a second epoch; snapshots in between."""
    tmp = tmp_path_factory.mktemp("e2e")
    run_dir, sub = tmp / "run", tmp / "submission.csv"
    data = f"data.dir={tiny_synth}"
    run("train.py", data, f"run.dir={run_dir}", *TRAIN)
    ckpts = run_dir / "checkpoints"
    out = {
        "run": run_dir,
        "submission": sub,
        "files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()),
        "config": OmegaConf.load(run_dir / "config.yaml"),
        "last_1": load_ckpt(ckpts / "last.ckpt"),
        "best_1": load_ckpt(ckpts / "best.ckpt"),
        "tb": sorted((run_dir / "tb").glob("events.out.tfevents.*")),
    }
    out["predict"] = run("predict.py", data, f"run.dir={run_dir}", f"submission={sub}")
    out["validate"] = run("-m", "seqrec.validate", str(sub), data)
    run("train.py", data, f"run.dir={run_dir}", *TRAIN, "train.max_epochs=2", "ckpt=last")  # last wins
    out["last_2"] = load_ckpt(ckpts / "last.ckpt")
    out["checkpoints_2"] = sorted(p.name for p in ckpts.iterdir())
    return out


def test_the_network_is_refitted_on_the_whole_log_with_the_cuts_ranker(pipeline, tiny_synth):
    ckpts = pipeline["run"] / "checkpoints"  # after the resumed second epoch
    refit, best = load_ckpt(ckpts / "refit.ckpt"), load_ckpt(ckpts / "best.ckpt")
    assert refit["ranker"]["model"] == best["ranker"]["model"]  # the ranking stage fitted at the cut
    reports = pipeline["run"] / "reports"
    trained, refitted = (json.loads((reports / f"{s}.json").read_text())["summary"] for s in ("train", "refit"))
    assert refitted["epochs"] == best["epoch"] + 1  # the best epoch count
    assert refitted["windows"] > trained["windows"]  # the last window's events too
    assert not torch.equal(refit["state_dict"]["net.item_emb.weight"], best["state_dict"]["net.item_emb.weight"])
    assert "refit.ckpt" in pipeline["predict"].stdout  # predict.py decodes with the refitted network


def test_train_writes_checkpoints_config_and_tensorboard(pipeline):
    files = pipeline["files"]
    assert {"checkpoints/best.ckpt", "checkpoints/last.ckpt", "checkpoints/refit.ckpt", "config.yaml"} <= set(files)
    assert len(pipeline["tb"]) == 1
    cfg = pipeline["config"]  # the resolved config of the run, overrides included
    assert cfg.model.d_model == 16 and cfg.model.max_len == 20 and cfg.train.loss == "sampled"
    assert cfg.train.max_epochs == 1 and cfg.split.min_window_events == 1

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(pipeline["tb"][0]))
    tb.Reload()
    scalars = set(tb.Tags()["scalars"])
    assert {"train/loss", "val/score", "val/ndcg@50"} <= scalars
    losses = [e.value for e in tb.Scalars("train/loss")]
    assert len(losses) == STEPS and np.isfinite(losses).all()


def test_checkpoints_load_without_pickles_and_rebuild_the_module(pipeline):
    last, best = pipeline["last_1"], pipeline["best_1"]
    assert last["global_step"] == STEPS and last["epoch"] == 0
    hp = best["hyper_parameters"]
    assert hp["model"]["d_model"] == 16 and set(hp) == {"model", "train", "n_items", "catalog", "side", "config_digest"}
    assert set(hp["side"]) == {"artist", "genres", "duration", "popularity"}  # model.use_side, on by default
    assert best["state_dict"]["net.item_emb.weight"].shape == (hp["n_items"] + 1, 16)
    module = SeqRecModule(**hp)
    module.load_state_dict(best["state_dict"])  # strict: every weight
    assert all(torch.isfinite(p).all() for p in module.parameters())
    ranker = load_ranker(best["ranker"])  # the ranking stage fitted on validation travels with the weights
    assert ranker.kind == "gbdt" and ranker.features == ranker_features(RankConfig())  # the default ranking stage
    assert ranker.model is not None and ranker.booster.num_trees() > 0  # fitted on the validation window


def test_a_discovery_network_with_side_information_trains_predicts_and_carries_its_tables(tiny_synth, tmp_path):
    run_dir, sub, data = tmp_path / "run", tmp_path / "sub.csv", f"data.dir={tiny_synth}"
    run("train.py", data, f"run.dir={run_dir}", *TRAIN, "train.objective=next_discover", "train.loss=full",
        "rank.n_explore_candidates=20")
    run("predict.py", data, f"run.dir={run_dir}", f"submission={sub}")
    assert run("-m", "seqrec.validate", str(sub), data).returncode == 0
    refit = load_ckpt(run_dir / "checkpoints" / "refit.ckpt")
    assert set(refit["hyper_parameters"]["side"]) == {"artist", "genres", "duration", "popularity"}
    ds = build_dataset(tiny_synth, load_config([]).clean)
    for name, table in side_tables(ds.items, counts_of(ds), tuple(refit["hyper_parameters"]["side"])).items():
        np.testing.assert_array_equal(refit["state_dict"][f"net.side_{name}"].numpy(), table, err_msg=name)
    net = Run.load(load_config([data, f"run.dir={run_dir}"])).net  # rebuilt with its side tables
    assert set(net.side) == {"artist", "genres", "duration", "popularity"}


def test_the_ranking_stage_falls_back_to_relisten_when_the_gbdt_cannot_learn(tiny_synth, tmp_path):
    run_dir = tmp_path / "run"
    # no leaf may hold fewer rows than the whole window has: a GBDT of constant trees, ranking by item id
    done = run("train.py", f"data.dir={tiny_synth}", f"run.dir={run_dir}", *TRAIN, "train.refit=false",
               "rank.min_data_in_leaf=10000000")
    assert "ranked by relisten (the best single source)" in done.stdout
    chosen = json.loads((run_dir / "reports" / "train.json").read_text())["summary"]["ranking_stage"]
    assert chosen["ranker"] == "relisten (the best single source)"
    assert chosen["val_score_relisten"] > chosen["val_score_fitted"]
    ranker = load_ranker(load_ckpt(run_dir / "checkpoints" / "best.ckpt")["ranker"])
    assert (ranker.kind, ranker.feature, ranker.then) == ("by_feature", "relisten", "log_popularity")


def test_submission_lists_50_distinct_items_for_every_test_user(pipeline, tiny_synth):
    sub = pd.read_csv(pipeline["submission"])
    assert list(sub.columns) == ["id", "user_id", "item_id", "rank"]
    test_users = set(pd.read_csv(tiny_synth / "test.csv")["user_id"])
    assert set(sub["user_id"]) == test_users
    per_user = sub.groupby("user_id").agg(n=("item_id", "size"), distinct=("item_id", "nunique"),
                                          ranks=("rank", lambda r: sorted(r) == list(range(1, 51))))
    assert (per_user["n"] == 50).all() and (per_user["distinct"] == 50).all() and per_user["ranks"].all()
    catalog = pd.read_csv(tiny_synth / "item_metadata.csv")
    assert sub["item_id"].isin(catalog.loc[catalog["track_duration"].notna(), "item_id"]).all()
    assert f"wrote {pipeline['submission']} ({len(test_users)} users x 50)" in pipeline["predict"].stdout
    assert f"valid ({len(test_users)} users x 50 items)" in pipeline["validate"].stdout


def test_resume_continues_from_last_checkpoint(pipeline):
    last = pipeline["last_2"]
    assert last["global_step"] == 2 * pipeline["last_1"]["global_step"] == 2 * STEPS
    assert last["epoch"] == 1
    assert pipeline["checkpoints_2"] == ["best.ckpt", "last.ckpt", "refit.ckpt"]  # no best-v1.ckpt, no partial
    before, after = pipeline["last_1"]["state_dict"], last["state_dict"]
    assert not torch.equal(before["net.item_emb.weight"], after["net.item_emb.weight"])  # it trained on


def test_train_refuses_to_resume_without_a_checkpoint(tiny_synth, tmp_path):
    cfg = load_config([f"data.dir={tiny_synth}", f"run.dir={tmp_path / 'none'}", *TRAIN, "ckpt=last"])
    with pytest.raises(UserError, match="does not exist; train once without ckpt= first"):
        train(cfg)


def test_a_truncated_checkpoint_is_named_with_what_to_do(pipeline, tiny_synth, tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.ckpt").write_bytes((pipeline["run"] / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    cfg = load_config([f"data.dir={tiny_synth}", f"run.dir={tmp_path / 'run'}", *TRAIN, "ckpt=last"])
    with pytest.raises(UserError, match=r"last\.ckpt: cannot be read .* \(ckpt=best\) or train afresh"):
        train(cfg)


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tiny_synth, tmp_path):
    """kill -9 after the first epoch's checkpoint and before the last one, resume with ckpt=last: the same steps
    and, to float tolerance, the same weights as a run that was never stopped (each epoch's random state is fixed
    by seed and epoch). An epoch here takes 0.4 s on a fast core: the kill comes 0.1 s after the first checkpoint,
    and two more epochs leave room on any machine."""
    args = [f"data.dir={tiny_synth}", *TRAIN, "train.max_epochs=3", "train.limit_train_batches=60",
            "train.refit=false", "train.progress_bar=false", "train.patience=5"]
    run("train.py", *args, f"run.dir={tmp_path / 'whole'}")
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, "train.py", *args, f"run.dir={killed}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    while not last.exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_ckpt(last)["epoch"] < 2, "killed after the last epoch's checkpoint"
    run("train.py", *args, f"run.dir={killed}", "ckpt=last")
    whole, resumed = load_ckpt(tmp_path / "whole" / "checkpoints" / "last.ckpt"), load_ckpt(last)
    assert resumed["global_step"] == whole["global_step"] > 60
    for name, weight in whole["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], weight, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 training step needs CUDA")
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_bf16_training_step_on_gpu(tiny_synth, loss):
    pl.seed_everything(0)
    cfg = load_config([f"data.dir={tiny_synth}", "model.d_model=32", "model.max_len=20", f"train.loss={loss}",
                       "train.n_negatives=256", "train.loss_chunk=64"])
    ds = build_dataset(tiny_synth, cfg.clean)
    feats = event_features(build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min), cfg.train.weight_mode)
    batch = {k: v.cuda() for k, v in TrainWindows(feats, cfg.model.max_len)[list(range(32))].items()}
    module = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=side_tables(ds.items, counts_of(ds))).cuda()
    counts = torch.bincount(torch.from_numpy(feats.item), minlength=ds.n_items + 1).double().cuda()
    q = (counts + 1) ** cfg.train.neg_alpha
    q[0] = 0
    q = (q / q.sum()).float()

    def step(autocast: bool) -> torch.Tensor:
        torch.manual_seed(1)  # the same negatives both times
        module.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            states = module.net.encode(batch)
            target, w = batch["target"].flatten(), batch["weight"].flatten()
            if loss == "full":
                value = weighted_ce(module.net, states.flatten(), target, w, cfg.train.loss_chunk)
            else:
                neg = torch.multinomial(q, cfg.train.n_negatives, replacement=True)
                value = sampled_ce(module.net, states, batch["item"], target, w, neg, q.log())
        value.backward()
        return value.detach()

    module.eval()  # no dropout: both passes see the same network
    fp32 = step(autocast=False)
    bf16 = step(autocast=True)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)
    assert abs(bf16.item() - fp32.item()) < 0.05 * fp32.item()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert module.net.item_emb.weight.grad.abs().sum() > 0


def test_the_gpu_preset_runs_every_path_but_cuda_on_the_cpu(tiny_synth, tmp_path):
    """preset=gpu shrunk to the tiny data, in bf16-mixed on the CPU, with loader worker processes and the
    full-catalog loss: dtypes through scoring, losses and decoding, the workers, and the checkpoint round trip."""
    run_dir, sub = tmp_path / "run", tmp_path / "submission.csv"
    done = run("train.py", f"data.dir={tiny_synth}", f"run.dir={run_dir}", "preset=gpu", "train.accelerator=cpu",
               "train.precision=bf16-mixed", "train.num_workers=2", "model.d_model=16", "model.max_len=20",
               "train.max_epochs=1", f"train.limit_train_batches={STEPS}", "train.batch_size=16",
               "train.loss_chunk=64", "split.min_window_events=1", "split.max_users=40", "decode.batch_users=64")
    assert "bfloat16 Automatic Mixed Precision" in done.stdout + done.stderr
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.train.loss == "full" and config.train.num_workers == 2 and config.model.n_heads == 4
    best = load_ckpt(run_dir / "checkpoints" / "best.ckpt")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in best["state_dict"].values()
               if v.is_floating_point())  # bf16 computes, fp32 weights are kept
    predicted = run("predict.py", f"run.dir={run_dir}", f"submission={sub}")
    assert f"wrote {sub}" in predicted.stdout and "future.csv score" in predicted.stdout
    assert len(pd.read_csv(sub)) == 50 * len(pd.read_csv(tiny_synth / "test.csv"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16-mixed training needs CUDA")
def test_train_py_runs_bf16_mixed_on_gpu(tiny_synth, tmp_path):
    for loss in ("full", "sampled"):
        run_dir = tmp_path / loss
        done = run("train.py", f"data.dir={tiny_synth}", f"run.dir={run_dir}", *TRAIN, "train.accelerator=gpu",
                   f"train.loss={loss}", gpu=True)
        assert "bfloat16 Automatic Mixed Precision" in done.stdout + done.stderr  # Lightning names its precision
        last = load_ckpt(run_dir / "checkpoints" / "last.ckpt")
        assert last["global_step"] == STEPS
        assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a step called without a trainer
def test_compiled_network_trains_like_the_plain_one_and_keeps_checkpoint_names(tiny_synth, one_thread):
    cfg = load_config([f"data.dir={tiny_synth}", "model.d_model=16", "model.max_len=8", "model.dropout=0",
                       "train.loss=full", "train.compile=true", "train.objective=next"])  # batches made below
    ds = build_dataset(tiny_synth, cfg.clean)
    feats = event_features(build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min), cfg.train.weight_mode)
    batch = TrainWindows(feats, cfg.model.max_len)[list(range(8))]
    plain = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=side_tables(ds.items, counts_of(ds)))
    compiled = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=side_tables(ds.items, counts_of(ds)))
    compiled.load_state_dict(plain.state_dict())
    compiled.configure_model()  # what Lightning calls before fitting
    assert compiled.net._compiled_call_impl is not None and plain.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())
    losses = [m.training_step(batch, 0) for m in (plain, compiled)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.net.item_emb.weight.grad, plain.net.item_emb.weight.grad,
                               rtol=1e-4, atol=1e-6)
