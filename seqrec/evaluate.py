"""Offline evaluation: every model on the same temporal split, one table (markdown + JSON).

python -m seqrec.evaluate data.dir=DIR [split.mode=future] [eval.models=[relisten,als]]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from seqrec import report
from seqrec.baselines import make_baseline
from seqrec.cli import Command, run
from seqrec.config import Config, load_config
from seqrec.data.split import Split
from seqrec.errors import UserError
from seqrec.inference.rerank import rerank_dataset
from seqrec.io import write_atomic
from seqrec.offline import extra_metrics, list_metrics
from seqrec.run import Run
from seqrec.storage import localised


def columns(k: int) -> list[str]:
    """The table's columns for lists of length k."""
    return ["score", f"ndcg@{k}", f"recall@{k}", "coverage", "novelty", "diversity", "repeat", "fit_s", "predict_s"]


def evaluate_model(name: str, split: Split, cfg: Config, rerank: bool = False, run: Run | None = None
                   ) -> dict[str, float]:
    """Fit one baseline (or decode the trained SASRec run) on the split's history and score its lists;
    with `rerank`, its best `rerank.candidates * k` re-ranked down to k (seqrec.inference.rerank)."""
    k = cfg.eval.k
    n = cfg.rerank.candidates * k if rerank else k
    t0 = time.perf_counter()
    if name == "sasrec":  # trained by train.py: only decoding is timed here
        fit_s, recs = 0.0, (run or Run.load(cfg, cfg.split.mode == "future")).recommend(split.history, split.users, n)
    else:
        model = make_baseline(name, cfg.baselines, cfg.seed).fit(split.history)
        fit_s = time.perf_counter() - t0
        recs = model.recommend(split.users, n)[0]
    if rerank:  # by rank, as predict.py does: model scores are not on one scale
        recs = rerank_dataset(recs, split.history, cfg.rerank, k)
    predict_s = time.perf_counter() - t0 - fit_s
    return {**list_metrics(recs, split), "fit_s": fit_s, "predict_s": predict_s,
            **extra_metrics(recs, split, cfg.eval.cutoffs)}


def markdown_table(rows: dict[str, dict[str, float]], k: int, cols: list[str] | None = None) -> str:
    """One row per model, the columns `cols` (default: `columns(k)`)."""
    cols = cols or columns(k)
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[c]:.1f}" if c.endswith("_s") else f"{row[c]:.4f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COMMAND = Command(
    usage="python -m seqrec.evaluate [split.mode=temporal|future] [eval.models=[...]] [key=value ...]",
    summary="Fit the baselines (and decode a trained run with sasrec in eval.models) on the log up to a cut and "
            "score the next\n15 days with the contest metric and others; tables in eval.out (markdown, JSON).",
    keys=("data.dir", "split.mode", "split.min_window_events", "eval.models", "run.dir", "eval.k", "eval.cutoffs",
          "eval.out", "metric.fraction", "metric.rounding", "metric.normalise", "rerank.enabled"),
    examples=("python -m seqrec.evaluate data.dir=data/real",
              "python -m seqrec.evaluate eval.models=[transitions,sasrec] run.dir=runs/demo split.mode=future"),
)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    with localised(load_config(sys.argv[1:] if argv is None else argv)) as (cfg, _):
        return evaluate(cfg)


def evaluate(cfg: Config) -> dict[str, dict[str, float]]:
    """The table of cfg.eval.models on cfg.split, printed and written to cfg.eval.out; returns its rows."""
    if not cfg.eval.models:
        raise UserError("eval.models is empty: name at least one model, e.g. eval.models=[relisten]")
    run = None
    if "sasrec" in cfg.eval.models:  # every row then reads the data as the run was trained on it
        run = Run.load(cfg, whole_log=cfg.split.mode == "future")  # the temporal window: the cut's network
        cfg = run.cfg
    ds = report.ingest(cfg)
    split = report.split(ds, cfg)
    print(f"{cfg.split.mode} split: history up to {split.history.end}, "
          f"{len(split.users):,} users scored on {len(split.window):,} window events")
    with report.step_report(cfg, "evaluate") as rep:
        rows = rep["metrics"] = evaluate_models(split, cfg, run)
        best = max(rows, key=lambda n: rows[n]["score"])
        rep["summary"] = {"mode": cfg.split.mode, "users": len(split.users), "best": best,
                          **{f"score {name}": row["score"] for name, row in rows.items()}}
    table = markdown_table(rows, cfg.eval.k)
    first = next(iter(rows.values()))
    at_k = [c for c in first if c.split("@")[0] in ("precision", "map", "hit")]
    table += ("\n\nAt cutoffs (relevant: listened at least a quarter in the window):\n\n"
              + markdown_table(rows, cfg.eval.k, at_k))
    table += (f"\n\nThe score under every reading of the contest text (fraction / rounding / normalisation; this "
              f"table's `score` is {cfg.metric.fraction}/{cfg.metric.rounding}/{cfg.metric.normalise}):\n\n"
              + markdown_table(rows, cfg.eval.k, [c for c in first if c.startswith("score ")]))
    out = Path(cfg.eval.out)
    write_atomic(out / f"{cfg.split.mode}.md", table + "\n")
    write_atomic(out / f"{cfg.split.mode}.json", json.dumps(rows, indent=2) + "\n")
    print(table)
    print(f"best {best} {rows[best]['score']:.4f}")
    return rows


def evaluate_models(split: Split, cfg: Config, run: Run | None = None) -> dict[str, dict[str, float]]:
    """One row per model of cfg.eval.models (and its re-ranked row when rerank.enabled), printed as they come."""
    rows = {}
    for name in cfg.eval.models:
        rows[name] = evaluate_model(name, split, cfg, run=run)
        note = " (its ranking stage was fitted on this window: in-sample)" if name == "sasrec" and \
            cfg.split.mode == "temporal" else ""
        print(f"  {name}: score {rows[name]['score']:.4f}{note}", flush=True)
        if cfg.rerank.enabled:
            rows[f"{name}+rerank"] = row = evaluate_model(name, split, cfg, rerank=True, run=run)
            print(f"  {name}+rerank: score {row['score']:.4f}  diversity {row['diversity']:.4f}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
