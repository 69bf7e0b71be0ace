"""One GPU measurement, from a bare image to a BENCHMARKS.md table: generate the `full` set, one epoch of the `gpu`
preset with torch.compile off and on (windows/s, peak GPU memory, precision), then every user's list decoded by
the first run (users/s), within a time budget.

bash benchmarks/gpu.sh [--smoke]                       (installs the wheels of .whl/ when there are any, then this)
python benchmarks/gpu.py --out DIR [--smoke] [--budget-s 450] [--data DIR]

Each stage runs in its own process (its peak memory its own; a stage that fails is a row saying so, the others
still run). Decoding writes every user's lists (`predict.py users=all lists=...`) and stops at the budget: its
users/s counts the users written over the decoding's wall time, tables included, and says how many of all it
reached. `--smoke` runs the same stages on the `tiny` preset on CPU with a few batches: the test suite runs it so
that the script cannot rot. The table goes to stdout and DIR/gpu.md, the figures to DIR/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("generate", "train", "train_compiled", "decode")


def settings(smoke: bool, data: Path, run: Path, compiled: bool) -> list[str]:
    """train.py's settings of one training stage: one epoch, no refit, a validation sample."""
    common = [f"data.dir={data}", f"run.dir={run}", "train.max_epochs=1", "train.refit=false",
              "train.progress_bar=false", f"train.compile={str(compiled).lower()}"]
    if smoke:
        return [*common, "preset=tiny", "train.accelerator=cpu", "decode.device=cpu", "train.limit_train_batches=3"]
    return [*common, "preset=gpu", "split.max_users=5000"]


def stage_train(a: argparse.Namespace, compiled: bool) -> dict:
    import torch

    from seqrec.config import load_config
    from seqrec.train import train

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from epoch_timer import EpochTimer

    cfg = load_config(settings(a.smoke, a.data, a.out / ("run_compiled" if compiled else "run"), compiled))
    timer = EpochTimer()
    cuda = torch.cuda.is_available() and cfg.train.accelerator != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train(cfg, callbacks=[timer])
    summary = json.loads((Path(cfg.run.dir) / "reports" / "train.json").read_text())["summary"]
    seconds = timer.end - timer.start
    windows = min(summary["windows"], summary["steps"] * cfg.train.batch_size)  # the epoch's, batches limited or not
    return {"windows": windows, "epoch_s": seconds, "windows_per_s": windows / seconds,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "precision": cfg.train.precision or ("bf16-mixed" if cuda else "32-true"),
            "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"}


def stage_generate(a: argparse.Namespace) -> dict:
    from seqrec.synth import PRESETS, generate

    t0 = time.perf_counter()
    counts = generate(PRESETS["tiny" if a.smoke else "full"], a.data)
    return {"rows": counts["interactions"], "seconds": time.perf_counter() - t0}


def stage_decode(a: argparse.Namespace, left_s: float) -> dict:
    """Every user's lists by the first run, stopped when the budget is spent (the shards written stay)."""
    lists = a.out / "lists"
    cmd = [sys.executable, str(ROOT / "predict.py"), f"run.dir={a.out / 'run'}", "users=all", f"lists={lists}",
           *(["decode.device=cpu", "decode.shard_users=64"] if a.smoke else ["decode.shard_users=4096"])]
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=max(left_s, 1), capture_output=True, text=True)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    seconds = time.perf_counter() - t0
    manifest = json.loads((lists / "manifest.json").read_text())
    shards = len(list(lists.glob("part-*.parquet")))
    users = min(shards * manifest["shard_users"], manifest["users"])
    return {"users": users, "of": manifest["users"], "seconds": seconds, "users_per_s": users / seconds,
            "finished": finished}


def run_stage(a: argparse.Namespace, name: str, left_s: float) -> dict:
    """One stage in a child process: its result, or the last line of its error."""
    cmd = [sys.executable, __file__, "--stage", name, "--out", str(a.out), "--data", str(a.data),
           "--left-s", str(left_s), *(["--smoke"] if a.smoke else [])]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(left_s, 1) + 120)
    wall = time.perf_counter() - t0
    if out.returncode:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:300], "wall_s": wall}
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall_s": wall}


def table(r: dict, smoke: bool) -> str:
    def cell(stage: str, key: str, fmt: str = "{:.1f}") -> str:
        row = r.get(stage, {})
        if "error" in row:
            return f"failed: {row['error']}"
        value = row.get(key)
        return "-" if value is None else fmt.format(value)

    lines = [f"`bash benchmarks/gpu.sh{' --smoke' if smoke else ''}` on {cell('train', 'device', '{}')}, "
             f"{time.strftime('%Y-%m-%d')}; {'tiny preset on CPU (smoke)' if smoke else 'full preset, gpu preset'}",
             "", "| stage | figure | value |", "|---|---|---:|",
             f"| generate | rows, seconds | {cell('generate', 'rows', '{:,}')}, {cell('generate', 'seconds')} |"]
    for stage, label in (("train", "compile off"), ("train_compiled", "compile on")):
        lines += [f"| one epoch, {label} | windows/s | {cell(stage, 'windows_per_s', '{:,.0f}')} |",
                  f"| one epoch, {label} | epoch seconds ({cell(stage, 'windows', '{:,}')} windows) | "
                  f"{cell(stage, 'epoch_s')} |",
                  f"| one epoch, {label} | peak GPU GiB, precision | {cell(stage, 'peak_gpu_gib', '{:.2f}')}, "
                  f"{cell(stage, 'precision', '{}')} |"]
    lines += [f"| decode every user (lists) | users/s | {cell('decode', 'users_per_s', '{:,.0f}')} |",
              f"| decode every user (lists) | users written of all, finished | {cell('decode', 'users', '{:,}')} of "
              f"{cell('decode', 'of', '{:,}')}, {cell('decode', 'finished', '{}')} |",
              f"| whole script | seconds | {r['total_s']:.0f} |"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "gpu")
    p.add_argument("--data", type=Path, help="the hear-me folder (default: OUT/data, generated)")
    p.add_argument("--smoke", action="store_true", help="tiny preset on CPU: the test suite's run")
    p.add_argument("--budget-s", type=float, default=450.0, help="the whole script's seconds; decoding stops here")
    p.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument("--left-s", type=float, default=0.0, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.data = a.data or a.out / "data"
    if a.stage:
        result = {"generate": lambda: stage_generate(a), "train": lambda: stage_train(a, False),
                  "train_compiled": lambda: stage_train(a, True), "decode": lambda: stage_decode(a, a.left_s)}
        print(json.dumps(result[a.stage]()))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    t0, results = time.perf_counter(), {}
    for name in STAGES:
        if name == "generate" and (a.data / "interactions.csv").exists():
            results[name] = {"rows": None, "seconds": None}
            continue
        results[name] = run_stage(a, name, a.budget_s - (time.perf_counter() - t0))
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    results["total_s"] = time.perf_counter() - t0
    text = table(results, a.smoke)
    (a.out / "gpu.json").write_text(json.dumps(results, indent=2))
    (a.out / "gpu.md").write_text(text + "\n")
    print(text)
    sys.exit(1 if any("error" in v for v in results.values() if isinstance(v, dict)) else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
