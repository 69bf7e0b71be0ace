import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from seqrec import cli, validate
from seqrec.baselines import BASELINES
from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.evaluate import columns
from seqrec.inference.submission import check
from seqrec.predict import predict

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["popular", "segment_popular", "relisten", "transitions", "als", "itemknn"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A seqrec command in a fresh interpreter, from `cwd` so that nothing lands in the repository."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def ds(tiny_synth):
    cfg = load_config([f"data.dir={tiny_synth}"])
    return load_dataset(cfg.data, cfg.clean)


@pytest.fixture(scope="module")
def popular_csv(tiny_synth, tmp_path_factory) -> Path:
    """The `popular` submission for the tiny synthetic set, written in-process."""
    path = tmp_path_factory.mktemp("popular") / "popular.csv"
    predict(load_config([f"data.dir={tiny_synth}", "model=popular", f"submission={path}", f"run.dir={path.parent}"]))
    return path


def test_every_baseline_is_covered():
    assert sorted(BASELINES) == sorted(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_predict_writes_a_valid_submission_for_every_baseline(tiny_synth, ds, tmp_path, model, capsys):
    path = tmp_path / "sub.csv"
    scores = predict(load_config([f"data.dir={tiny_synth}", f"model={model}", f"submission={path}",
                                  f"run.dir={tmp_path / 'run'}"]))
    frame = pd.read_csv(path)
    assert check(frame, ds, 50) == []
    assert len(frame) == 50 * len(pd.read_csv(tiny_synth / "test.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "sub.csv"]  # no temporary file left
    # tiny_synth has future.csv, so the submission is scored
    assert set(scores) == {"score", "ndcg@50", "recall@50", "coverage", "novelty", "diversity", "repeat"}
    assert 0 < scores["score"] <= 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{model}: wrote {path} ({len(ds.test_users)} users x 50) in ")
    assert out[1].startswith(f"future.csv score {scores['score']:.4f}  ndcg@50 {scores['ndcg@50']:.4f}")


def test_predict_py_script_matches_the_in_process_run(tiny_synth, popular_csv, tmp_path):
    path = tmp_path / "sub.csv"
    done = run([str(ROOT / "predict.py"), f"data.dir={tiny_synth}", "model=popular", f"submission={path}"],
               tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"popular: wrote {path} (")
    assert path.read_bytes() == popular_csv.read_bytes()


def test_validate_accepts_a_good_submission(tiny_synth, popular_csv, tmp_path):
    done = run(["-m", "seqrec.validate", str(popular_csv), f"data.dir={tiny_synth}"], tmp_path)
    n_users = len(pd.read_csv(tiny_synth / "test.csv"))
    assert (done.returncode, done.stdout) == (0, f"{popular_csv}: valid ({n_users} users x 50 items)\n")


def test_validate_lists_every_violation_of_a_broken_submission(tiny_synth, popular_csv, tmp_path):
    frame = pd.read_csv(popular_csv)
    u0, u2 = frame["user_id"].iloc[0], frame["user_id"].iloc[100]
    frame.loc[120, "item_id"] = frame["item_id"].iloc[100]  # the third user's first item again, at rank 21
    frame = frame.drop(index=10)  # the first user's rank 11
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)
    done = run(["-m", "seqrec.validate", str(path), f"data.dir={tiny_synth}"], tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{path}: id must run 0..{len(frame) - 1} in order; row 10 has id 11",
        f"{path}: 1 user(s) without exactly 50 rows, e.g. user_id {u0} has 49",
        f"{path}: 1 repeated (user, item) pair(s), e.g. user_id {u2} item_id {frame['item_id'].iloc[99]}",
        f"{path}: 1 user(s) whose ranks are not 1..50, e.g. user_id {u0}",
    ]


@pytest.mark.parametrize("files", [[], ["a.csv", "b.csv"]])
def test_validate_without_exactly_one_file_prints_usage(tiny_synth, tmp_path, files):
    done = run(["-m", "seqrec.validate", *files, f"data.dir={tiny_synth}"], tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: give exactly one submission file, got {files or 'none'}; usage: "
                           f"{validate.COMMAND.usage}\n")


@pytest.mark.parametrize("content, reason", [
    (None, "No such file"),
    (b"", "cannot read as CSV: No columns to parse from file"),
    (b"id,user_id,item_id,rank\n0,1,2,3\n1,1,2,3,4,5\n",
     "cannot read as CSV: Error tokenizing data. C error: Expected 4 fields in line 3, saw 6"),
    (b"id,user_id,item_id,rank\n0,1,\xff\xfe,1\n", "cannot read as CSV: 'utf-8' codec can't decode byte 0xff"),
])
def test_validate_reports_an_unreadable_file(tiny_synth, tmp_path, capsys, content, reason):
    path = tmp_path / "sub.csv"
    if content is not None:
        path.write_bytes(content)
    assert cli.run(validate.COMMAND, validate.main, [str(path), f"data.dir={tiny_synth}"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {path}: ") and reason in err and err.count("\n") == 1


def test_evaluate_writes_both_tables_and_names_the_best(tiny_synth, tmp_path):
    out = tmp_path / "eval"
    done = run(["-m", "seqrec.evaluate", f"data.dir={tiny_synth}", "split.min_window_events=1",
                "eval.models=[popular,relisten]", f"eval.out={out}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["temporal.json", "temporal.md"]
    rows = json.loads((out / "temporal.json").read_text())
    assert list(rows) == ["popular", "relisten"]
    for row in rows.values():
        assert list(row)[:len(columns(50))] == columns(50)
        assert {"precision@3", "map@10", "hit@50", "score sum/round/window"} <= set(row)
        assert len([c for c in row if c.startswith("score ")]) == 8
        assert row["score longest/floor/k"] == row["score"]  # the default reading is the headline
        assert all(isinstance(v, float) for v in row.values())
    best = max(rows, key=lambda n: rows[n]["score"])
    last = done.stdout.splitlines()[-1]
    assert re.fullmatch(r"best (popular|relisten) \d\.\d{4}", last)
    assert last == f"best {best} {rows[best]['score']:.4f}"
    md = (out / "temporal.md").read_text().splitlines()
    assert md[0] == "| model | " + " | ".join(columns(50)) + " |"
    assert md[1] == "|---" * (len(columns(50)) + 1) + "|"
    assert [line.split(" | ")[0] for line in md[2:4]] == ["| popular", "| relisten"]
    assert md[4] == "" and md[5].startswith("At cutoffs") and "longest/floor/k" in md[-4]  # the two extra tables
    assert md[2].split(" | ")[1] == f"{rows['popular']['score']:.4f}"
    for name in rows:
        assert f"  {name}: score {rows[name]['score']:.4f}" in done.stdout.splitlines()


def test_metric_names_follow_the_list_length(tiny_synth, tmp_path):
    from seqrec.evaluate import main as evaluate

    rows = evaluate([f"data.dir={tiny_synth}", "split.min_window_events=1", "eval.models=[relisten]", "eval.k=20",
                     f"eval.out={tmp_path}"])
    assert list(rows["relisten"])[:9] == columns(20) and "ndcg@20" in columns(20)
    assert {"precision@3", "precision@10", "precision@20"} <= set(rows["relisten"])
    assert (tmp_path / "temporal.md").read_text().startswith("| model | score | ndcg@20 | recall@20 |")
