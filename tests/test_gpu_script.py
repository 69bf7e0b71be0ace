"""benchmarks/gpu.sh in its smoke mode (tiny preset, CPU): every stage runs and the table is written, so the script
a GPU machine runs cannot rot between loans."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.inference.lists import check_lists

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_script_runs_every_stage_in_smoke_mode(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    out = subprocess.run(["bash", "benchmarks/gpu.sh", "--smoke", "--budget-s", "400"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads((tmp_path / "gpu.json").read_text())
    assert r["generate"]["rows"] > 0
    for stage in ("train", "train_compiled"):
        assert r[stage]["windows"] > 0 and r[stage]["windows_per_s"] > 0 and r[stage]["precision"] == "32-true"
    assert r["decode"]["finished"] and r["decode"]["users"] == r["decode"]["of"] > 0
    table = (tmp_path / "gpu.md").read_text()
    assert "| one epoch, compile on | windows/s |" in table and "| decode every user (lists) | users/s |" in table
    assert table in out.stdout
    ds = load_dataset(load_config([f"data.dir={tmp_path / 'data'}"]).data, load_config([]).clean)
    assert check_lists(tmp_path / "lists", ds, np.arange(ds.n_users)) == []
