"""The network as the engine that finds new tracks: id-only vs side information, `next` vs the discover objectives.

python benchmarks/discovery.py data.dir=DIR --runs FOLDER [--rows NAME ...] [preset=demo] [key=value ...]

Each row trains the preset with one change (into FOLDER/<row>, reused when it holds a trained run, so a crashed
sweep resumes), every row with the `explore` source at 100 and no refit, then reads on the temporal split:
- the network's best 200 never-played tracks: their share of the best achievable never-played credit (each
  user's best k window tracks), as benchmarks/candidates.py counts it;
- the union of the candidates as decoded, with and without the network's sources: candidates per user and
  never-played recall;
- the pipeline (benchmarks/rankers.py's rows, LightGBM seed rank.seed): val/score cross-fitted and future.csv with
  the cut's network, in full and without the network (no `model` or `explore` candidates, nothing in their place,
  no network features): what the network is worth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from candidates import never_played, played_matrix, recall, source_lists  # benchmarks/ is on the path
from rankers import MODEL_FEATURES, NO_NETWORK_SOURCES, candidates, one_row, with_overrides

from seqrec import PAD
from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.run import Run
from seqrec.train import train

EVERY_ROW = ["rank.n_explore_candidates=100", "train.refit=false", "train.progress_bar=false"]
ROWS = {  # name: overrides of the preset
    "id only, next": ["model.use_side=false", "train.objective=next"],
    "side information, next": ["model.use_side=true", "train.objective=next"],
    "id only, discover": ["model.use_side=false", "train.objective=discover"],
    "id only, next + discover": ["model.use_side=false", "train.objective=next_discover"],
    "side information, next + discover": ["model.use_side=true", "train.objective=next_discover"],
    "side information, next, 200 events": ["model.use_side=true", "train.objective=next", "model.max_len=200"],
    "side information, next, d_model 128": ["model.use_side=true", "train.objective=next", "model.d_model=128"],
    "side information, discover window": ["model.use_side=true", "train.objective=discover_window"],
    "side information, next + discover window": ["model.use_side=true", "train.objective=next_discover_window"],
    "side information, next + discover window, d_model 128": ["model.use_side=true",
                                                              "train.objective=next_discover_window",
                                                              "model.d_model=128"],
    "side information, next + discover window, 200 events": ["model.use_side=true",
                                                             "train.objective=next_discover_window",
                                                             "model.max_len=200"],
}
TOP = 200
"""The network's never-played list read for recall."""


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def measure(run_dir: Path, base: list[str]) -> dict[str, float]:
    """The figures of one trained run."""
    given = [o for o in base if not o.startswith("preset=")]  # the run keeps the settings it was trained with
    run = Run.load(load_config([*given, f"run.dir={run_dir}"]), whole_log=False)
    torch.set_grad_enabled(False)
    cfg = run.cfg = with_overrides(run.cfg, [o for o in EVERY_ROW if o.startswith("rank.")])  # whatever it ran with
    ds = load_dataset(cfg.data, cfg.clean)
    split = make_split(ds, cfg.split, cfg.seed, cfg.metric)
    fsplit = None if ds.future is None else make_split(ds, dataclasses.replace(cfg.split, mode="future"), cfg.seed,
                                                       cfg.metric)
    k = cfg.eval.k
    played = played_matrix(split.history, split.users)
    lists = source_lists(run, split, TOP + int(np.diff(played.indptr).max()))
    summary = json.loads((run_dir / "reports" / "train.json").read_text())["summary"]
    explore = never_played(lists["explore"], played, TOP)
    out = {"val/score (train)": summary["best_val_score"],
           f"explore never played @{TOP}": recall(explore, split, k)["never played"]}
    for label, overrides, scorer in (("full", [], "network"),
                                     ("without network", [MODEL_FEATURES, *NO_NETWORK_SOURCES], None)):
        rcfg = with_overrides(cfg, overrides)
        c = candidates(run, rcfg, split, scorer)
        fc = None if fsplit is None else candidates(run, rcfg, fsplit, scorer)
        row = one_row(rcfg, split, c, None if fsplit is None else (fsplit, fc))
        out[f"{label} val"], out[f"{label} future"] = row["val"], row.get("future", float("nan"))
        out[f"{label} candidates/user"] = float(c.mask.sum(1).mean())
        out[f"{label} never played"] = recall(np.where(c.mask, c.items, PAD), split, k)["never played"]
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a folder for the rows' runs (reused when trained)")
    p.add_argument("--rows", nargs="+", default=[], metavar="NAME", choices=list(ROWS), help="only these rows")
    a, base = p.parse_known_args(argv)
    if not any(o.startswith("preset=") for o in base):
        base.append("preset=demo")
    results = {}
    for name, extra in ROWS.items():
        if a.rows and name not in a.rows:
            continue
        run_dir = a.runs / slug(name)
        if not (run_dir / "checkpoints" / "best.ckpt").exists():
            print(f"{name}: training into {run_dir}", file=sys.stderr, flush=True)
            train(load_config([*base, *EVERY_ROW, *extra, f"run.dir={run_dir}"]))
        results[name] = measure(run_dir, base)
        print(name, results[name], file=sys.stderr, flush=True)
    head = ["row", "val/score", "val/score without the network", "network worth (val)", "future",
            "future without the network", "network worth (future)", f"network's never-played @{TOP}",
            "union never played (per user)", "union without the network (per user)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in results.items():
        print(f"| {name} | {r['full val']:.4f} | {r['without network val']:.4f} | "
              f"{r['full val'] / r['without network val'] - 1:+.1%} | {r['full future']:.4f} | "
              f"{r['without network future']:.4f} | {r['full future'] / r['without network future'] - 1:+.1%} | "
              f"{r[f'explore never played @{TOP}']:.1%} | {r['full never played']:.1%} "
              f"({r['full candidates/user']:.0f}) | {r['without network never played']:.1%} "
              f"({r['without network candidates/user']:.0f}) |")


if __name__ == "__main__":
    main(sys.argv[1:])
