"""A trained run is rebuilt one way (Run.load): with the settings it was trained with, whatever the command line
leaves at its defaults. predict.py then decodes exactly as validation did, a setting that would change the
features is refused, and the service returns predict.py's lists."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from omegaconf import OmegaConf

from seqrec.config import RANK_FROM_BASELINES, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.sequences import build_sequences
from seqrec.data.split import make_split
from seqrec.inference.decode import make_decoder
from seqrec.models.features import event_features
from seqrec.predict import predict
from seqrec.ranking.evidence import LogTables
from seqrec.run import Run, RunError
from seqrec.serve.app import create_app
from seqrec.train import train
from seqrec.training.datamodule import SeqDataModule
from seqrec.training.ranking_stage import RankingStage

TRAIN = ["preset=tiny", "train.refit=true"]
NOT_DEFAULT = ["clean.session_gap_min=10", "clean.max_duration_ratio=3", "rank.relisten_half_life_days=10",
               "rank.transitions_last_n=5", "rank.short_half_life_days=3",
               "model.use_side=false", "rank.n_explore_candidates=0"]  # as runs were before either existed
K = 50


@pytest.fixture(scope="module")
def run_dir(tiny_synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config([f"data.dir={tiny_synth}", f"run.dir={run}", *TRAIN, *NOT_DEFAULT]))
    finally:
        torch.set_num_threads(threads)
    return run


def test_a_run_keeps_its_own_settings_when_the_command_line_gives_none(run_dir, tiny_synth):
    run = Run.load(load_config([f"run.dir={run_dir}"]))
    assert run.cfg.clean.session_gap_min == 10 and run.cfg.rank.relisten_half_life_days == 10
    assert run.cfg.rank.short_half_life_days == 3 and run.cfg.model.d_model == 16
    assert not run.cfg.model.use_side and not run.net.side and run.cfg.rank.n_explore_candidates == 0
    assert run.cfg.data.dir == str(tiny_synth)


def test_predict_with_defaults_decodes_as_validation_did(run_dir, tiny_synth):
    run = Run.load(load_config([f"data.dir={tiny_synth}", f"run.dir={run_dir}"]))
    cfg = run.cfg
    split = make_split(load_dataset(cfg.data, cfg.clean), cfg.split, cfg.seed)
    validation = RankingStage(split, SeqDataModule(split, cfg).feats, cfg).decoder  # what training validated with
    want = validation.topk(run.net, split.users, run.ranker, K)
    np.testing.assert_array_equal(run.recommend(split.history, split.users, K), want)
    # The settings matter: the command line's defaults would have decoded other lists.
    plain = load_config([f"data.dir={tiny_synth}", *TRAIN])
    seqs = build_sequences(split.history.events, split.history.n_users, plain.clean.session_gap_min)
    other = make_decoder(split.history, event_features(seqs, plain.train.weight_mode), plain,
                         LogTables.build(split.history, plain.rank)).topk(run.net, split.users, run.ranker, K)
    assert (other != want).any()


def test_a_setting_that_changes_the_features_is_refused_by_name(run_dir, tiny_synth, tmp_path):
    given = load_config([f"data.dir={tiny_synth}", f"run.dir={run_dir}", "clean.session_gap_min=30",
                         f"submission={tmp_path / 's.csv'}"])
    with pytest.raises(RunError, match=r"clean.session_gap_min=10.0 \(given: 30.0\)"):
        predict(given)
    assert not (tmp_path / "s.csv").exists()
    ok = load_config([f"run.dir={run_dir}", "decode.batch_users=7", "eval.k=20", f"submission={tmp_path / 's.csv'}"])
    run = Run.load(ok)  # what may differ: batch sizes, outputs, k, device
    assert run.cfg.decode.batch_users == 7 and run.cfg.eval.k == 20


def test_the_service_returns_predict_pys_lists(run_dir, tmp_path):
    sub = tmp_path / "submission.csv"
    predict(load_config([f"run.dir={run_dir}", f"submission={sub}"]))
    lists = pd.read_csv(sub).sort_values(["user_id", "rank"]).groupby("user_id")["item_id"].apply(list)
    cfg = load_config([f"run.dir={run_dir}", f"serve.db={tmp_path / 'events.sqlite'}"])
    with TestClient(create_app(cfg)) as client:
        for user_id, items in lists.head(5).items():
            body = client.get(f"/recommendations/{user_id}?k={K}").json()
            assert [it["item_id"] for it in body["items"]] == items


def _as_before_the_ranking_package(run_dir, old, ranker: dict | None = None) -> None:
    """`run_dir` copied to `old` as a run trained before the ranking stage had its own keys: candidate sizes and
    the short half-life under decode.*, the MLP blend's keys, the log statistics under baselines.*, and before
    side information, the explore source and the fallback existed, and before runs recorded their state and config
    digest."""
    shutil.copytree(run_dir, old)
    (old / "state.json").unlink()
    cfg = OmegaConf.to_container(OmegaConf.load(old / "config.yaml"))
    rank, decode, baselines = cfg["rank"], cfg["decode"], cfg["baselines"]
    for key in ("n_model_candidates", "n_history_candidates", "n_next_candidates", "n_artist_candidates",
                "short_half_life_days", "drop_features"):
        decode[key] = rank.pop(key)
    decode["n_transition_candidates"] = rank.pop("n_favourites_candidates")
    decode.update(use_history=True, blend_hidden=8, blend_l2=1e-4, blend_steps=60, blend_lr=0.05)
    for key in RANK_FROM_BASELINES:
        baselines[key] = rank.pop(key)
    for key in ("source_features", "by", "n_explore_candidates", "fallback", "fallback_by"):
        del rank[key]
    del cfg["model"]["use_side"]
    (old / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    for name in ("best.ckpt", "refit.ckpt"):
        path = old / "checkpoints" / name
        state = torch.load(path, weights_only=True)
        del state["hyper_parameters"]["model"]["use_side"], state["hyper_parameters"]["side"]
        del state["hyper_parameters"]["config_digest"]
        state["ranker"].pop("fallback")
        state["ranker"] = ranker or state["ranker"]
        torch.save(state, path)


def test_a_run_trained_before_the_ranking_package_decodes_as_it_did(run_dir, tiny_synth, tmp_path):
    _as_before_the_ranking_package(run_dir, tmp_path / "old")
    old = Run.load(load_config([f"run.dir={tmp_path / 'old'}"]))
    assert old.cfg.rank.relisten_half_life_days == 10 and old.cfg.rank.transitions_last_n == 5  # from baselines.*
    assert old.cfg.rank.short_half_life_days == 3 and old.cfg.rank.n_favourites_candidates == 60
    now = Run.load(load_config([f"run.dir={run_dir}"]))
    ds = load_dataset(now.cfg.data, now.cfg.clean)
    users = ds.test_users[:20]
    np.testing.assert_array_equal(old.recommend(ds, users, K), now.recommend(ds, users, K))


def test_a_run_with_the_retired_blend_is_refused_in_one_line(run_dir, tmp_path):
    blend = {"kind": "blend", "features": ["model_logp", "relisten"], "hidden": 8, "params": {}}
    _as_before_the_ranking_package(run_dir, tmp_path / "old", ranker=blend)
    with pytest.raises(RunError, match="retired MLP blend; train the run again") as err:
        Run.load(load_config([f"run.dir={tmp_path / 'old'}"]))
    assert "\n" not in str(err.value)
    cfg = OmegaConf.load(tmp_path / "old" / "config.yaml")
    cfg.rank.model = "blend"
    (tmp_path / "old" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    with pytest.raises(RunError, match="trained with the retired MLP blend ranking stage"):
        Run.load(load_config([f"run.dir={tmp_path / 'old'}"]))
