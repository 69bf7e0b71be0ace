"""The Python API for notebooks: seqrec.load_run and its frames, and the example script."""

import subprocess
import sys
from pathlib import Path

import pytest

import seqrec
from seqrec.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run


def test_recommend_similar_and_evaluate_return_frames(run_dir):
    run = seqrec.load_run(str(run_dir))
    ds = run.data
    users = ds.users["user_id"].iloc[ds.test_users[:3]].tolist()
    lists = run.recommend(users, k=7)
    assert list(lists.columns[:3]) == ["user_id", "rank", "item_id"]
    assert lists["user_id"].tolist() == [u for u in users for _ in range(7)]
    assert lists.groupby("user_id")["item_id"].nunique().tolist() == [7, 7, 7]
    assert set(lists["item_id"]) <= set(ds.items["item_id"][ds.items["valid"]])
    near = run.similar(int(lists["item_id"].iloc[0]), k=4)
    assert near["rank"].tolist() == [1, 2, 3, 4] and near["score"].is_monotonic_decreasing
    assert int(lists["item_id"].iloc[0]) not in near["item_id"].tolist()
    table = run.evaluate(["relisten"])
    assert table.index.tolist() == ["relisten", "sasrec"] and (table["score"] > 0).all()
    with pytest.raises(UserError, match=r"user_id\(s\) \[-5\] are not in"):
        run.recommend([-5])


def test_the_example_script_runs(run_dir):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py"), str(run_dir)], cwd=run_dir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "user_id  rank  item_id" in done.stdout and "relisten" in done.stdout and "sasrec" in done.stdout
