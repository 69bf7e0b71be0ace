"""Pipeline reports: every step of a tiny run writes its JSON report, and seqrec.report summarises them."""

import json
from pathlib import Path

import pandas as pd
import pytest

from seqrec import evaluate, report
from seqrec.config import load_config
from seqrec.errors import UserError
from seqrec.predict import predict
from seqrec.train import train

TRAIN = ["preset=tiny", "train.limit_train_batches=2", "train.refit=true"]


@pytest.fixture(scope="module")
def run(tiny_synth, tmp_path_factory) -> dict:
    """train, evaluate and predict into one run folder; the configs each step used."""
    tmp = tmp_path_factory.mktemp("reported")
    common = [f"data.dir={tiny_synth}", f"run.dir={tmp / 'run'}", f"eval.out={tmp / 'eval'}"]
    cfgs = {
        "train": load_config([*common, *TRAIN]),
        "evaluate": load_config([*common, "eval.models=[popular,relisten]"]),
        "predict": load_config([*common, "model=relisten", f"submission={tmp / 'sub.csv'}"]),
    }
    train(cfgs["train"])
    out = {"cfgs": cfgs, "rows": evaluate.main([*common, "eval.models=[popular,relisten]"]),
           "scores": predict(cfgs["predict"])}
    out["reports"] = {p.stem: json.loads(p.read_text()) for p in (tmp / "run" / "reports").glob("*.json")}
    return out


def test_every_step_writes_a_report_with_timing_config_and_code_version(run):
    reports = run["reports"]
    assert sorted(reports) == sorted(report.STEPS)
    for step, r in reports.items():
        assert r["step"] == step and r["status"] == "ok" and r["error"] is None
        assert r["seconds"] >= 0 and r["started"].endswith("+00:00")
        assert r["code_version"].startswith(("git ", "seqrec "))
    assert reports["train"]["config"]["train"]["max_epochs"] == 1  # the resolved config of that step
    assert reports["predict"]["config"]["model"]["name"] == "relisten"


def test_ingest_report_counts_inputs_rows_and_cleaning(run, tiny_synth):
    r = run["reports"]["ingest"]
    assert r["inputs"] == {p.name: p.stat().st_size for p in Path(tiny_synth).glob("*.csv")}
    rows = r["cleaning"]["interactions"]
    assert r["summary"]["rows_in"] == rows["rows_in"] == len(pd.read_csv(tiny_synth / "interactions.csv"))
    assert r["summary"]["rows_out"] == rows["rows_out"] < rows["rows_in"]  # the tiny preset carries noise
    assert rows["dropped_exact_duplicates"] > 0
    assert r["summary"]["test_users"] == len(pd.read_csv(tiny_synth / "test.csv"))


def test_split_train_evaluate_and_predict_reports_hold_their_figures(run):
    reports = run["reports"]
    split = reports["split"]["summary"]
    assert split["users_scored"] == reports["evaluate"]["summary"]["users"] > 0
    assert split["mode"] == "temporal" and split["history_rows"] > split["window_rows"] > 0
    tr = reports["train"]["summary"]
    assert tr["steps"] == 2 and tr["parameters"] > 0 and tr["best_checkpoint"].endswith("best.ckpt")
    assert tr["best_val_score"] == pytest.approx(reports["train"]["metrics"]["val/score"])
    assert reports["evaluate"]["metrics"] == run["rows"]
    assert reports["evaluate"]["summary"]["score relisten"] == run["rows"]["relisten"]["score"]
    pred = reports["predict"]
    assert pred["metrics"] == pytest.approx(run["scores"])
    assert pred["summary"]["future_score"] == run["scores"]["score"]
    assert pred["summary"]["rows"] == 50 * pred["summary"]["users"]


def test_a_failing_step_still_writes_its_report(run, tmp_path):
    cfg = load_config([f"run.dir={tmp_path}", "data.dir=nowhere"])
    with pytest.raises(ValueError, match="boom"), report.step_report(cfg, "predict") as rep:
        rep["summary"]["users"] = 3
        raise ValueError("boom")
    r = json.loads((tmp_path / "reports" / "predict.json").read_text())
    assert r["status"] == "failed" and r["error"] == "ValueError: boom"
    assert r["summary"] == {"users": 3}


def test_summary_lists_the_steps_in_pipeline_order(run, capsys):
    cfg = run["cfgs"]["train"]
    report.main([f"run.dir={cfg.run.dir}"])
    out = capsys.readouterr().out
    heads = [line.split(":")[0] for line in out.splitlines() if line and not line.startswith((" ", "run "))]
    assert heads == list(report.STEPS)
    assert f"  rows_out: {run['reports']['ingest']['summary']['rows_out']:,}" in out
    assert f"  score relisten: {run['rows']['relisten']['score']:.4f}" in out


def test_summary_of_a_folder_without_reports_says_what_to_run(tmp_path):
    with pytest.raises(UserError, match="run train.py, seqrec.evaluate or predict.py"):
        report.main([f"run.dir={tmp_path}"])
