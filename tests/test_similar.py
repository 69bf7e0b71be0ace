import numpy as np
import pytest
import torch

from seqrec import PAD, cli
from seqrec.config import BaselineConfig, load_config, to_yaml
from seqrec.ranking.rankers import ByFeature
from seqrec.similar import COMMAND, cooccurrence_neighbours, cooccurrence_table, embedding_neighbours, main
from seqrec.training.module import SeqRecModule
from seqrec.training.ranking_stage import CarriesRanker

# Two clusters of three items (x-ish and y-ish); PAD's row copies item 1 to prove PAD is never returned.
EMB = torch.tensor([
    [1.0, 0.0, 0.0],  # PAD
    [1.0, 0.0, 0.0],
    [0.9, 0.1, 0.0],
    [4.0, 1.2, 0.0],  # a longer vector: cosine ignores the norm
    [0.0, 1.0, 0.0],
    [0.1, 0.9, 0.0],
    [0.0, 0.7, 0.3],
])


def cosine(i: int, j: int) -> float:
    a, b = EMB[i].numpy().astype(np.float64), EMB[j].numpy().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_embedding_neighbours_are_the_own_cluster_best_first():
    idx, val = embedding_neighbours(EMB, np.array([1, 4, 6]), k=2)
    assert idx.tolist() == [[2, 3], [5, 6], [4, 5]]
    assert idx.dtype == np.int64 and val.dtype == np.float32
    expected = [[cosine(q, j) for j in row] for q, row in zip([1, 4, 6], idx.tolist(), strict=True)]
    np.testing.assert_allclose(val, expected, rtol=1e-6)


def test_embedding_neighbours_skip_disallowed_and_pad_when_too_few():
    allowed = np.ones(7, dtype=bool)
    allowed[[2, 4]] = False
    idx, val = embedding_neighbours(EMB, np.array([1]), k=3, allowed=allowed)
    assert idx.tolist() == [[3, 5, 6]]  # 2 is out, the best of the other cluster follows
    idx, val = embedding_neighbours(EMB, np.array([1]), k=8, allowed=allowed)
    assert idx.tolist() == [[3, 5, 6, PAD, PAD, PAD, PAD, PAD]]  # more columns than the catalog has rows
    assert np.isfinite(val[0, :3]).all() and np.isneginf(val[0, 3:]).all()


def test_embedding_neighbours_never_return_the_query_or_pad_and_batches_agree():
    items = np.arange(1, 7)
    idx, val = embedding_neighbours(EMB, items, k=5)
    assert idx.shape == (6, 5)
    assert not (idx == items[:, None]).any() and not (idx == PAD).any()
    assert all(sorted(row) == sorted(set(range(1, 7)) - {q}) for q, row in zip(items, idx.tolist(), strict=True))
    assert (np.diff(val, axis=1) <= 0).all()
    idx1, val1 = embedding_neighbours(EMB, items, k=5, batch=1)
    assert idx1.tolist() == idx.tolist()
    np.testing.assert_allclose(val1, val)


@pytest.mark.parametrize("items, k, allowed, message", [
    (np.array([0]), 2, None, "indices 1..6"),
    (np.array([7]), 2, None, "indices 1..6"),
    (np.array([1]), 0, None, "k must be >= 1"),
    (np.array([1]), 2, np.ones(6, bool), r"length n_items \+ 1 = 7"),
])
def test_embedding_neighbours_refuse_bad_queries(items, k, allowed, message):
    with pytest.raises(ValueError, match=message):
        embedding_neighbours(EMB, items, k, allowed)


def test_cooccurrence_neighbours_follow_co_listening(make_dataset):
    # users 0-3 play items 1 and 2 together; user 0 also plays 3; users 4-5 play 3 and 4
    events = [(u, i, f"2025-05-0{u + 1} 1{i}:00:00", 1.0) for u in range(4) for i in (1, 2)]
    events += [(0, 3, "2025-05-09 10:00:00", 1.0)]
    events += [(u, i, f"2025-05-0{u + 1} 1{i}:00:00", 1.0) for u in (4, 5) for i in (3, 4)]
    ds = make_dataset(events, n_items=5, n_users=6)
    sim = cooccurrence_table(ds, BaselineConfig())
    idx, val = cooccurrence_neighbours(sim, np.array([1, 2]), k=3)
    assert idx.tolist() == [[2, 3, PAD], [1, 3, PAD]]  # item 4 was never played with 1 or 2; 5 never played
    np.testing.assert_allclose(val[:, :2], [[1.0, 1 / (2 * np.sqrt(3))]] * 2, rtol=1e-5)
    assert np.isneginf(val[:, 2]).all()
    allowed = np.ones(6, dtype=bool)
    allowed[2] = False
    idx, _ = cooccurrence_neighbours(sim, np.array([1]), k=2, allowed=allowed)
    assert idx.tolist() == [[3, PAD]]


ITEMS = ["item_id,track_name,artist_name,track_duration", "300,Alpha,A,100", "500,Beta,B,100", "700,Gamma,C,100"]
# 300 is played by 42, 43, 44; 500 by 42, 43; 700 by 44, 45: by co-listening 500 is closest to 300
PLAYS = [(42, 300), (42, 500), (43, 300), (43, 500), (44, 300), (44, 700), (45, 700)]


@pytest.fixture
def folder(hear_me):
    lines = ["user_id,item_id,listened_duration,listened_datetime"]
    lines += [f"{u},{i},100,2025-05-0{n % 9 + 1} 10:00:00.000000" for n, (u, i) in enumerate(PLAYS)]
    return hear_me(lines, items=ITEMS, test=["user_id", "42"])


def test_cli_lists_the_co_listened_track_first(folder, capsys):
    assert main([f"data.dir={folder}", "item_id=300", "k=2", "similar.method=cooccurrence"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "query 300  Alpha — A",
        "2 most similar by co-listening (item-kNN cosine):",
        f"  1. 500  Beta — B  {2 / np.sqrt(6):.4f}",
        f"  2. 700  Gamma — C  {1 / np.sqrt(6):.4f}",
    ]


def test_cli_reads_a_trained_runs_embeddings(folder, tmp_path, capsys):
    cfg = load_config([f"data.dir={folder}", "model.d_model=4", "model.n_heads=2", "model.use_side=false"])
    module = SeqRecModule.create(cfg.model, cfg.train, n_items=3)
    with torch.no_grad():  # item indices follow sorted item_id: 300 -> 1, 500 -> 2, 700 -> 3
        module.net.item_emb.weight[1:] = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.9, 0.2, 0, 0]])
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    CarriesRanker(ByFeature("model_logp")).on_save_checkpoint(None, module, ckpt)  # what training adds: the ranker
    torch.save(ckpt, run_dir / "checkpoints" / "best.ckpt")
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    assert cfg.similar.method == "embedding"
    assert main([f"run.dir={run_dir}", "item_id=300", "k=1"]) == 0  # the data folder is the run's own
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"1 most similar by embedding of {run_dir}:"
    assert out[2] == f"  1. 700  Gamma — C  {0.9 / np.sqrt(0.85):.4f}"


def test_cli_errors_name_the_unknown_id_and_the_missing_checkpoint(folder, tmp_path, capsys):
    assert cli.run(COMMAND, main, [f"data.dir={folder}", "item_id=999", "similar.method=cooccurrence"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "item_id 999" in err and str(folder) in err
    assert cli.run(COMMAND, main, [f"data.dir={folder}", f"run.dir={tmp_path / 'none'}", "item_id=300"]) == 2
    err = capsys.readouterr().err
    assert "not found: train first" in err and "similar.method=cooccurrence" in err


def test_a_tracks_own_versions_are_left_out_unless_asked(hear_me, capsys):
    items = [*ITEMS, "900,Alpha (Remix),A,130"]  # a version of 300: its own song group
    lines = ["user_id,item_id,listened_duration,listened_datetime"]
    lines += [f"{u},{i},100,2025-05-0{n % 9 + 1} 10:00:00.000000"
              for n, (u, i) in enumerate([*PLAYS, (42, 900), (43, 900), (44, 900)])]
    folder = hear_me(lines, items=items, test=["user_id", "42"])
    assert main([f"data.dir={folder}", "item_id=300", "k=3", "similar.method=cooccurrence"]) == 0
    out = capsys.readouterr().out
    assert "900" not in out.split("most similar")[1] and "500" in out
    assert main([f"data.dir={folder}", "item_id=300", "k=3", "similar.method=cooccurrence",
                 "similar.same_song=true"]) == 0
    assert "900" in capsys.readouterr().out.split("most similar")[1]
