"""How each stage's time and peak memory grow with the log: synthetic logs of several sizes, every stage of every
size in a fresh process, and the fitted growth exponent b of seconds ∝ events^b.

python benchmarks/growth.py [--sizes 1 5 25] [--out reports/growth] [key=value ...]

Sizes are millions of events: the `full` preset (the real log's density) with users scaled to the size, items
scaled with users^0.8 (at least 20K). Data sets are generated once into data/synthetic/growth_<N>M. Stages
(each process also loads what it needs from the parquet cache, untimed but inside its peak memory):
- ingest: read + clean + index the CSVs (build_dataset, no cache);
- sequences: build_sequences over the cleaned log;
- evidence: the decoder's log tables (LogTables.build) and the transitions baseline's fit;
- training arrays: the whole log's per-event arrays the network trains from, written block by block into the
  cache as memory-mapped files (seqrec.training.store, what train.py builds once per log);
- train step: forward, loss, backward and optimizer step of the demo-size network on N_BATCHES batches of the
  training loader, its windows read from those memory-mapped arrays (seconds per step);
- decode: the log-wide tables, then candidates and features for the temporal split's validation users (at most
  MAX_USERS) as one shard, with an untrained demo-size network (users per second);
- ranker fit: the GBDT on those candidates;
- ingest to shards, training arrays from shards: the out-of-core path (data.engine=duckdb's cleaning written as
  parquet user shards, then the training arrays built one shard at a time into memory-mapped files).
Peak memory is the process's peak resident set, pages of memory-mapped files it touched included.
Prints a table (seconds, peak GiB per stage and size, exponent b) and writes it with a PNG of both curves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ingest import peak_gib  # benchmarks/ is on the path: this file runs as a script

ROOT = Path(__file__).resolve().parent.parent
FULL_EVENTS, FULL_USERS, FULL_ITEMS = 25.7e6, 279_000, 349_000  # the full preset's rows out, users, items
N_BATCHES = 20
MAX_USERS = 1_500  # the contest's test users
STAGES = ("ingest", "sequences", "evidence", "training arrays", "train step", "decode", "ranker fit")
OUT_OF_CORE = ("ingest to shards", "training arrays from shards")
ALL = (*STAGES, *OUT_OF_CORE)


def folder(size: float) -> Path:
    return ROOT / "data" / "synthetic" / f"growth_{size:g}M"


def generate(size: float) -> None:
    from seqrec.synth import PRESETS
    from seqrec.synth import generate as synth

    scale = size * 1e6 / FULL_EVENTS
    users = max(1_000, int(FULL_USERS * scale))
    items = max(20_000, int(FULL_ITEMS * scale**0.8))
    synth(replace(PRESETS["full"], users=users, items=items), folder(size))


def stage(name: str, size: float, overrides: list[str]) -> dict:
    """One stage on one size, in this process."""
    import torch

    from seqrec.config import load_config
    from seqrec.data.dataset import build_dataset, load_dataset

    cfg = load_config([f"data.dir={folder(size)}", "preset=demo", *overrides])
    torch.manual_seed(cfg.seed)
    if name in OUT_OF_CORE:
        return out_of_core(name, cfg)
    if name == "ingest":
        t = time.perf_counter()
        ds = build_dataset(folder(size), cfg.clean, cfg.data.engine, cfg.data.duckdb_memory)
        return {"s": time.perf_counter() - t, "events": len(ds.events)}
    ds = load_dataset(cfg.data, cfg.clean)
    if name == "sequences":
        from seqrec.data.sequences import build_sequences

        t = time.perf_counter()
        build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
        return {"s": time.perf_counter() - t}
    if name == "evidence":
        from seqrec.baselines import make_baseline
        from seqrec.ranking.evidence import LogTables

        t = time.perf_counter()
        LogTables.build(ds, cfg.rank)
        make_baseline("transitions", cfg.baselines, cfg.seed).fit(ds)
        return {"s": time.perf_counter() - t}

    if name == "training arrays":
        import shutil

        from seqrec.data.dataset import cache_root
        from seqrec.training.store import event_store

        for old in (cache_root(cfg.data) / ds.digest).glob("store-*"):  # built afresh, as on a log's first training
            shutil.rmtree(old)
        t = time.perf_counter()
        event_store(ds, cfg)
        return {"s": time.perf_counter() - t}

    from seqrec.data.split import make_split

    split = make_split(ds, cfg.split, cfg.seed, cfg.metric)
    if name == "train step":
        from train_throughput import step_rate

        from seqrec.training.datamodule import SeqDataModule
        from seqrec.training.module import SeqRecModule
        from seqrec.training.store import event_store

        dm = SeqDataModule(split, cfg, event_store(ds, cfg))  # the store the training arrays stage wrote
        batches = [b for b, _ in zip(dm.train_dataloader(), range(N_BATCHES), strict=False)]
        module = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=dm.side_tables())
        return {"s": 1.0 / step_rate(module, batches, cfg.train.lr)}

    from seqrec.data.sequences import build_sequences
    from seqrec.inference.decode import make_decoder
    from seqrec.models.features import event_features
    from seqrec.models.side import catalog_network
    from seqrec.ranking.evidence import LogTables
    from seqrec.ranking.rankers import fit

    hist, users = split.history, split.users[:MAX_USERS]
    net = catalog_network(cfg.model, hist.items, np.bincount(hist.events["item"], minlength=hist.n_items + 1)).eval()
    shard = hist.shard(users)  # as Run.recommend decodes one shard: the log's tables, the shard's evidence
    seqs = build_sequences(shard.events, shard.n_users, cfg.clean.session_gap_min)
    decoder = make_decoder(shard, event_features(seqs, cfg.train.weight_mode), cfg, LogTables.build(hist, cfg.rank))
    with torch.no_grad():
        t = time.perf_counter()
        c = decoder.candidates(net, users, cfg.eval.k)
        decode_s = time.perf_counter() - t
    if name == "decode":
        return {"s": decode_s, "users_per_s": len(users) / decode_s}
    t = time.perf_counter()
    fit(c, split.truth.lookup(users, c.items), cfg.rank)
    return {"s": time.perf_counter() - t}


def out_of_core(name: str, cfg) -> dict:
    """The out-of-core path, whose memory is set by DuckDB's limit and the user shard: interactions.csv cleaned
    into parquet user shards (catalog and users from the cache the other stages wrote), then the training arrays
    built shard by shard into memory-mapped files."""
    import pandas as pd

    from seqrec.data import outofcore
    from seqrec.data.dataset import cache_dir
    from seqrec.training.store import build_store, horizon_seconds

    cache, shards = cache_dir(cfg.data, cfg.clean), Path(cfg.data.dir) / ".seqrec_shards"
    t = time.perf_counter()
    if name == "ingest to shards":
        items, users = pd.read_parquet(cache / "items.parquet"), pd.read_parquet(cache / "users.parquet")
        outofcore.clean_to_parquet(outofcore.connect(cfg.data.duckdb_memory), Path(cfg.data.dir) / "interactions.csv",
                                   items, users["user_id"].to_numpy(np.int64), cfg.clean, {}, shards)
        return {"s": time.perf_counter() - t}
    n_users = len(pd.read_parquet(cache / "users.parquet", columns=["user_id"]))
    build_store(outofcore.read_shards(shards), n_users, outofcore.count_events(shards), cfg.clean.session_gap_min,
                cfg.train.weight_mode, horizon_seconds(cfg), Path(cfg.data.dir) / ".seqrec_store")
    return {"s": time.perf_counter() - t}


def in_subprocess(name: str, size: float, overrides: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--sizes", str(size), *overrides]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"rc {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) > 1 else float("nan")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ALL:
        pts = [(r["events"], r[name]) for r in results.values() if "s" in r.get(name, {})]
        if pts:
            ev = [p[0] / 1e6 for p in pts]
            a.plot(ev, [p[1]["s"] for p in pts], "o-", label=name)
            b.plot(ev, [p[1]["peak_gib"] for p in pts], "o-", label=name)
    for ax, label in ((a, "seconds (train step: per step)"), (b, "peak GiB of the stage's process")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events (millions)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle("seqrec: cost of each stage against the log's size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1, 5, 25], help="millions of events")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "growth")
    p.add_argument("--stage", help=argparse.SUPPRESS)  # internal: one stage in a child process
    args, overrides = p.parse_known_args(argv)
    if args.stage:
        out = stage(args.stage, args.sizes[0], overrides)
        print(json.dumps({**out, "peak_gib": peak_gib()}))
        return
    results: dict[float, dict] = {}
    for size in args.sizes:
        if not (folder(size) / "interactions.csv").exists():
            t = time.perf_counter()
            generate(size)
            print(f"generated {folder(size)} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        row: dict = {}
        for name in ALL:
            row[name] = in_subprocess(name, size, overrides)
            print(f"{size:g}M {name}: {row[name]}", file=sys.stderr, flush=True)
        row["events"] = row["ingest"].get("events", size * 1e6)
        results[size] = row
    lines = ["| stage | " + " | ".join(f"{r['events'] / 1e6:.1f}M events: s / peak GiB" for r in results.values())
             + " | b (s ∝ events^b) |", "|---|" + "---|" * (len(results) + 1)]
    for name in ALL:
        cells, xs, ys = [], [], []
        for r in results.values():
            m = r[name]
            if "s" in m:
                extra = f" ({m['users_per_s']:.0f} users/s)" if "users_per_s" in m else ""
                cells.append(f"{m['s']:.2f}{extra} / {m['peak_gib']:.2f}")
                xs.append(r["events"])
                ys.append(m["s"])
            else:
                cells.append(f"failed: {m['error'][:60]}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {exponent(xs, ys):.2f} |")
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "growth.md").write_text(table + "\n")
    (args.out / "growth.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2) + "\n")
    plot(results, args.out / "growth.png")
    print(table)
    print(f"wrote {args.out}/growth.{{md,json,png}}")


if __name__ == "__main__":
    main(sys.argv[1:])
