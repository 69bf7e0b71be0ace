"""SASRec side by side with RecTools' SASRecModel: contest score, NDCG@50, time per epoch, peak memory.

python benchmarks/vs_rectools.py [--seeds 0 1] [--data-dirs DIR ...] [--epochs 6] [--out runs/vs_rectools/results.json]

RecTools 0.19 pins numpy<2 and pandas<3, so it runs in its own venv, .venv-rectools, made here when missing
(the local torch 2.13.0 wheel first, then rectools[torch] with torch held at that version). Per data set
(seed s: data/synthetic/demo for s=0, data/synthetic/demo_seed{s} otherwise, generated when missing) this
builds the demo preset's temporal split, writes its history and scored users to parquet, and trains each
library in a fresh process at the same size (d_model 64, 2 blocks, 2 heads, max_len 50, batch 128, lr,
dropout and epochs of configs/demo.yaml); peak memory is that process's max RSS (os.wait4), training and
decoding included. Time per epoch = wall time from the first training epoch's start to the last one's end
over the epochs run: ours includes its per-epoch validation (decoding the window's users and fitting the
blend), shown apart as well.

Headline rows compare like with like, both networks after their last epoch (same max_epochs; RecTools has no
validation to pick another):
  (a) network alone: each network's top-50 by its own scores over the tracks seqrec may recommend (same catalog
      and skip masks), repeats allowed: ours is its last epoch's val/score_model_only, RecTools' network is
      decoded from its user and item embeddings (dot products, as its recommend() scores);
  (b) full pipeline: ours is its last epoch's cross-fitted val/score; RecTools' network gets the same re-listen
      and transition candidates, the same named features and the same ranking stage, cross-fitted the same way.
Context rows: our best epoch, our run decoded in-sample (ranker fitted on the scored window), and RecTools'
own recommend() with filter_viewed on and off, the whole pipeline vs a bare network. Every list is scored with
seqrec.metrics on the same split.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from epoch_timer import EpochTimer  # benchmarks/ is on the path: this file runs as a script

import seqrec.train
from seqrec import PAD, metrics
from seqrec.config import Config, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import Split, make_split
from seqrec.io import write_atomic
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.rankers import ByFeature, crossfit, top_k
from seqrec.ranking.sources import Scores
from seqrec.run import Run

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-rectools"
TORCH = "torch==2.13.0"
RECTOOLS = "rectools[torch]==0.19.*"
PYARROW = "pyarrow<23"  # for the parquet exchange; 23+ needs numpy 2, which RecTools 0.19 excludes


def ensure_venv(venv: Path = VENV) -> Path:
    """RecTools' venv: created once, torch installed first and pinned so rectools never pulls another."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv}", flush=True)
        subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(venv)], check=True)
    if _versions(py) is None:
        print(f"installing {TORCH}, then {RECTOOLS} and pyarrow into {venv}", flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", TORCH], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", RECTOOLS, PYARROW, TORCH], check=True)
    found = _versions(py)
    if found is None or not found[1].startswith("2.13.0"):
        raise RuntimeError(f"{venv}: rectools, pyarrow or torch 2.13.0 missing (found {found}); remove the "
                           "folder and run again")
    return py


def _versions(py: Path) -> tuple[str, str] | None:
    """(rectools, torch) versions in a venv, or None when either, or pyarrow, does not import."""
    out = subprocess.run([str(py), "-c", "import pyarrow, rectools, torch; print(rectools.__version__, "
                          "torch.__version__)"], capture_output=True, text=True)
    return None if out.returncode else tuple(out.stdout.split()[:2])


def data_dirs(seeds: list[int]) -> list[tuple[str, Path]]:
    """The demo data set of each seed, generated when missing."""
    out = []
    for s in seeds:
        d = ROOT / "data" / "synthetic" / ("demo" if s == 0 else f"demo_seed{s}")
        if not (d / "interactions.csv").exists():
            print(f"generating {d} (seed {s})", flush=True)
            subprocess.run([sys.executable, "-m", "seqrec.synth", "--out", str(d), "--preset", "demo",
                            "--seed", str(s)], check=True, cwd=ROOT)
        out.append((str(s), d))
    return out


def demo_config(data_dir: Path, run_dir: Path | None = None, epochs: int | None = None) -> Config:
    overrides = ["preset=demo", f"data.dir={data_dir}", "train.progress_bar=false", "train.refit=false"]  # the cut only
    overrides += [f"run.dir={run_dir}"] if run_dir else []
    overrides += [f"train.max_epochs={epochs}"] if epochs else []
    return load_config(overrides)


def load_split(cfg: Config) -> Split:
    return make_split(load_dataset(cfg.data, cfg.clean), cfg.split, cfg.seed)


class ValidationTimer(EpochTimer):
    """Training-epoch wall time, validation time inside it, and each validation's logged metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.val_s = 0.0
        self.val: list[dict[str, float]] = []
        self._t = 0.0

    def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:  # before the first epoch: outside the timed span
            return
        self.val_s += time.perf_counter() - self._t
        self.val.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})


def run_ours(data_dir: Path, run_dir: Path, epochs: int | None, work: Path) -> None:
    """Child process: train with seqrec.train.train, decode the run as predict.py does, save lists and timings."""
    cfg = demo_config(data_dir, run_dir, epochs)
    timer = ValidationTimer()
    build = seqrec.train.build_trainer

    def build_timed(c: Config) -> pl.Trainer:
        trainer = build(c)
        trainer.callbacks.append(timer)
        return trainer

    seqrec.train.build_trainer = build_timed
    t0 = time.perf_counter()
    seqrec.train.train(cfg)
    train_s = time.perf_counter() - t0
    split = load_split(cfg)
    t0 = time.perf_counter()
    run = Run.load(load_config([f"run.dir={run_dir}"]), whole_log=False)
    recs = run.recommend(split.history, split.users, cfg.eval.k)
    decode_s = time.perf_counter() - t0
    np.save(work / "ours_recs.npy", recs)
    best = max(timer.val, key=lambda m: m["val/score"])
    write_atomic(work / "ours.json", json.dumps({
        "train_s": train_s, "epochs": timer.epochs, "epochs_s": timer.end - timer.start, "val_s": timer.val_s,
        "decode_s": decode_s, "best_val": best, "last_val": timer.val[-1], "val": timer.val,
    }, indent=2))


def run_child(cmd: list[str], log: Path) -> float:
    """Run a command in a fresh process (output to log); its peak RSS in GiB, from wait4."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        tail = "\n".join(log.read_text().strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} failed; last lines of {log}:\n{tail}")
    return usage.ru_maxrss / 2**20


def popularity(split: Split) -> np.ndarray:
    """Item indices by play count in the history, most played first."""
    counts = np.bincount(split.history.events["item"].to_numpy(), minlength=split.history.n_items + 1)
    counts[PAD] = -1
    return np.argsort(-counts, kind="stable")


def to_matrix(recs: pd.DataFrame, users: np.ndarray, k: int, popular: np.ndarray,
              viewed: dict[int, set[int]] | None) -> tuple[np.ndarray, int]:
    """RecTools' (user, item, rank) rows as (n_users, k) lists; short lists padded from popularity.

    With `viewed`, padding skips the user's played tracks too (as filter_viewed did). Returns the lists and the
    number of padded slots.
    """
    recs = recs.sort_values(["user", "rank"])
    lists = recs.groupby("user")["item"].agg(list).to_dict()
    out = np.zeros((len(users), k), dtype=np.int64)
    padded = 0
    for row, u in enumerate(users):
        items = list(dict.fromkeys(lists.get(int(u), [])))[:k]
        if len(items) < k:
            skip = set(items) | (viewed.get(int(u), set()) if viewed is not None else set())
            fill = [i for i in popular[: k + len(skip)] if i not in skip][: k - len(items)]
            padded += k - len(items)
            items += fill
        out[row] = items
    return out, padded


def scores(recs: np.ndarray, split: Split) -> dict[str, float]:
    return {"score": metrics.competition_score(recs, split.users, split.truth),
            "ndcg@50": metrics.ndcg_at_k(recs, split.users, split.truth)}


def compare_one(label: str, data_dir: Path, epochs: int | None, work: Path, py_rt: Path) -> list[dict]:
    """Both libraries on one data set, each trained in a fresh process: one row per (library, configuration)."""
    cfg = demo_config(data_dir, epochs=epochs)
    split = load_split(cfg)
    hist = split.history.events
    work.mkdir(parents=True, exist_ok=True)
    hist[["user", "item", "ts", "frac"]].to_parquet(work / "history.parquet", index=False)
    pd.DataFrame({"user": split.users.astype(np.int64)}).to_parquet(work / "users.parquet", index=False)
    print(f"seed {label}: {data_dir}, history {len(hist):,} events of {hist['user'].nunique():,} users, "
          f"{len(split.users):,} scored users", flush=True)

    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    peak = run_child([sys.executable, __file__, "--ours", str(data_dir), "--run-dir", str(run_dir),
                      "--work", str(work), *(["--epochs", str(epochs)] if epochs else [])], work / "ours.log")
    write_atomic(work / "ours_peak.json", json.dumps({"peak_gib": peak}))
    print(f"  seqrec trained ({peak:.2f} GiB peak)", flush=True)
    m, t = cfg.model, cfg.train
    cmd = [str(py_rt), str(ROOT / "benchmarks" / "rectools_side.py"), "--work", str(work),
           "--epochs", str(t.max_epochs), "--d-model", str(m.d_model), "--n-blocks", str(m.n_blocks),
           "--n-heads", str(m.n_heads), "--max-len", str(m.max_len), "--dropout", str(m.dropout),
           "--batch-size", str(t.batch_size), "--lr", str(t.lr), "--k", str(cfg.eval.k), "--seed", str(cfg.seed)]
    peak = run_child(cmd, work / "rectools.log")
    write_atomic(work / "rectools_peak.json", json.dumps({"peak_gib": peak}))
    print(f"  rectools trained ({peak:.2f} GiB peak)", flush=True)
    return score_rows(label, split, work, cfg.eval.k)


def rectools_network(split: Split, work: Path, run: Run, k: int) -> dict:
    """RecTools' trained network decoded through seqrec's decoder of the same history: its top-k alone (same
    masks as ours), and its log-probabilities as the model candidates and `model_logp` feature of our ranking
    stage, cross-fitted as our validation does. Also how often its plain top-k from the saved embeddings matches
    its own recommend(filter_viewed=False), a check that the embeddings are the ones it scores with."""
    emb = np.load(work / "rectools_embeddings.npz")
    row = {int(u): i for i, u in enumerate(emb["users"])}
    missing = [int(u) for u in split.users if int(u) not in row]
    if missing:
        raise RuntimeError(f"{work}/rectools_embeddings.npz: {len(missing)} scored user(s) missing, e.g. {missing[:5]}")
    user_emb, item_emb = torch.from_numpy(emb["user_emb"]).float(), torch.from_numpy(emb["item_emb"]).float()
    items = torch.from_numpy(emb["items"])
    decoder = run.decoder(split.history)
    allowed = torch.as_tensor(np.array(decoder.allowed))
    step = run.cfg.decode.batch_users
    parts, plain = [], []
    for lo in range(0, len(split.users), step):
        users = split.users[lo: lo + step]
        dots = user_emb[[row[int(u)] for u in users]] @ item_emb.T  # (B, known items), as RecTools scores
        plain.append(items[torch.topk(dots, k, dim=1).indices].numpy())
        logits = torch.full((len(users), split.history.n_items + 1), float("-inf"))
        logits[:, items] = dots
        logp = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
        parts.append(decoder.candidates_from(Scores(logp), users, k))
    c = Candidates.concat(parts)
    lists = crossfit(c, split.truth.lookup(split.users, c.items), run.cfg.rank, k)
    own = pd.read_parquet(work / "rectools_recs_unfiltered.parquet").sort_values(["user", "rank"])
    own = own.groupby("user")["item"].agg(list).to_dict()
    plain_lists = np.concatenate(plain)
    agree = np.mean([len(set(own.get(int(u), [])) & set(r)) / k for u, r in zip(split.users, plain_lists, strict=True)])
    return {"network": top_k(c, ByFeature("model_logp").score(c), k)[0], "pipeline": lists,
            "embedding_agreement": float(agree)}


def score_rows(label: str, split: Split, work: Path, k: int) -> list[dict]:
    """Rows of one data set from what the two children left in `work`: headline rows carry the group they
    compare ("network" or "pipeline"), the others are context."""
    hist = split.history.events
    ours = json.loads((work / "ours.json").read_text())
    recs = np.load(work / "ours_recs.npy")
    n_ep, best, last = ours["epochs"], ours["best_val"], ours["last_val"]
    targets = int(np.maximum(hist.groupby("user").size().to_numpy() - 1, 0).sum())
    base = {"seed": label, "library": "seqrec", "epochs": n_ep, "epoch_s": ours["epochs_s"] / n_ep,
            "epoch_s_no_val": (ours["epochs_s"] - ours["val_s"]) / n_ep, "train_targets_per_epoch": targets,
            "train_s": ours["train_s"], **json.loads((work / "ours_peak.json").read_text())}
    rt = json.loads((work / "rectools_side.json").read_text())
    theirs = {"seed": label, "library": "rectools", "epochs": rt["epochs"], "epoch_s": rt["epochs_s"] / rt["epochs"],
              "train_targets_per_epoch": rt["train_targets_per_epoch"], "fit_s": rt["fit_s"],
              "known_items": rt["known_items"], **json.loads((work / "rectools_peak.json").read_text())}
    net = rectools_network(split, work, Run.load(load_config([f"run.dir={work / 'run'}"]), whole_log=False), k)
    rows = [
        {**base, "headline": "network", "config": f"network alone, last epoch ({n_ep}) (val/score_model_only)",
         "score": last["val/score_model_only"], "ndcg@50": None},
        {**theirs, "headline": "network", "config": f"network alone, last epoch ({rt['epochs']}), seqrec's masks",
         **scores(net["network"], split), "embedding_agreement": net["embedding_agreement"]},
        {**base, "headline": "pipeline", "config": f"full pipeline, last epoch ({n_ep}) (val/score, cross-fitted)",
         "score": last["val/score"], "ndcg@50": last[f"val/ndcg@{k}"]},
        {**theirs, "headline": "pipeline", "config": f"network, last epoch ({rt['epochs']}), + seqrec's candidates "
         "and ranking stage (cross-fitted)", **scores(net["pipeline"], split)},
        {**base, "config": "full pipeline, best epoch (val/score, cross-fitted)", "score": best["val/score"],
         "ndcg@50": best[f"val/ndcg@{k}"]},
        {**base, "config": "best epoch decoded as predict.py does (ranking stage fitted on this window: in-sample)",
         **scores(recs, split), "decode_s": ours["decode_s"]},
    ]
    popular = popularity(split)
    viewed = hist[hist["user"].isin(split.users)].groupby("user")["item"].agg(set).to_dict()
    for filt in (True, False):
        part = pd.read_parquet(work / f"rectools_recs_{'filtered' if filt else 'unfiltered'}.parquet")
        lists, padded = to_matrix(part, split.users, k, popular, viewed if filt else None)
        rows.append({**theirs, "config": f"own recommend(), filter_viewed={filt}", **scores(lists, split),
                     "padded_slots": padded})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| seed | compares | library: config | score | NDCG@50 | train s / epoch | peak GiB | "
             "train targets / epoch |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["seed"], {"network": 0, "pipeline": 1}.get(r.get("headline"), 2))):
        epoch = f"{r['epoch_s']:.1f}"
        if "epoch_s_no_val" in r:
            epoch += f" ({r['epoch_s_no_val']:.1f} without validation)"
        ndcg = "-" if r["ndcg@50"] is None else f"{r['ndcg@50']:.4f}"
        lines.append(f"| {r['seed']} | {r.get('headline') or 'context'} | {r['library']}: {r['config']} | "
                     f"{r['score']:.4f} | {ndcg} | {epoch} | {r['peak_gib']:.2f} | {r['train_targets_per_epoch']:,} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> dict[str, float]:
    """Means over seeds of ours / theirs: the score of each headline comparison, and time per epoch."""
    out: dict[str, list[float]] = {"score_ratio_network": [], "score_ratio_pipeline": [], "time_ratio": []}
    for seed in dict.fromkeys(r["seed"] for r in rows):
        for group in ("network", "pipeline"):
            ours, theirs = (next(r for r in rows if r["seed"] == seed and r["library"] == lib
                                 and r.get("headline") == group) for lib in ("seqrec", "rectools"))
            out[f"score_ratio_{group}"].append(ours["score"] / theirs["score"])
        out["time_ratio"].append(ours["epoch_s"] / theirs["epoch_s"])
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="demo data sets by generation seed")
    p.add_argument("--data-dirs", nargs="+", help="explicit data folders instead of --seeds")
    p.add_argument("--epochs", type=int, help="override train.max_epochs of the demo preset (both sides)")
    p.add_argument("--work", default=None, help="work folder (default: a fresh temporary one)")
    p.add_argument("--out", default="runs/vs_rectools/results.json", help="JSON of every row")
    p.add_argument("--ours", help=argparse.SUPPRESS)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.ours:
        run_ours(Path(a.ours), Path(a.run_dir), a.epochs, Path(a.work))
        return
    py_rt = ensure_venv()
    sets = [(Path(d).name, Path(d).resolve()) for d in a.data_dirs] if a.data_dirs else data_dirs(a.seeds)
    work = Path(a.work).resolve() if a.work else Path(tempfile.mkdtemp(prefix="vs_rectools-"))
    rows = []
    for label, d in sets:
        rows += compare_one(label, d, a.epochs, work / label, py_rt)
    r = ratios(rows)
    write_atomic(a.out, json.dumps({"rows": rows, **r, "work": str(work)}, indent=2) + "\n")
    print(f"work folder {work}; rows also in {a.out}")
    print("headline: both networks after their last epoch, (network) alone under the same masks, (pipeline) "
          "with seqrec's candidates and ranking stage, cross-fitted; train s / epoch: first training epoch's "
          "start to last one's end, / epochs run (ours with its per-epoch validation); ratios are means over "
          "seeds of the per-seed ratios")
    print(table(rows))
    agree = [f"{r['seed']}: {r['embedding_agreement']:.3f}" for r in rows if "embedding_agreement" in r]
    print(f"RecTools' top-k from its saved embeddings vs its own recommend(filter_viewed=False), share "
          f"of items in common: {', '.join(agree)}")
    print(" ".join(f"{k}={v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
