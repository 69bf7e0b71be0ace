"""Pipeline reports: each step writes `<run.dir>/reports/<step>.json`; `python -m seqrec.report run.dir=RUN`
prints a summary of a run.

A report holds what the step read (files and sizes), row counts in and out, the cleaning counts, timings,
metrics, the resolved config and the code version. A step that fails still writes its report, with the error.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from seqrec.cli import Command, run
from seqrec.config import Config, RunConfig, load_config
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.data.split import Split, make_split
from seqrec.errors import UserError
from seqrec.io import write_atomic

STEPS = ("ingest", "split", "train", "refit", "evaluate", "predict")
"""The pipeline in the order data flows; the summary lists reports in this order."""


def report_path(run: RunConfig, step: str) -> Path:
    return Path(run.dir) / "reports" / f"{step}.json"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe` of the source tree when it is a checkout (with -dirty for local edits), else the package's."""
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return f"git {done.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"seqrec {metadata.version('seqrec')}"


@contextmanager
def step_report(cfg: Config, step: str) -> Iterator[dict]:
    """Time a step; the caller fills the yielded dict (keep short figures under "summary")."""
    payload: dict = {"summary": {}}
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    status, error = "ok", None
    try:
        yield payload
    except BaseException as e:
        status, error = "failed", "".join(traceback.format_exception_only(type(e), e)).strip()
        raise
    finally:
        if rank_zero_only.rank == 0:  # under DDP every process runs the step; one report is enough
            report = {"step": step, "status": status, "error": error, "started": started.isoformat(timespec="seconds"),
                      "seconds": round(time.perf_counter() - t0, 3), "code_version": code_version(),
                      "argv": sys.argv, **payload, "config": OmegaConf.to_container(OmegaConf.structured(cfg))}
            write_atomic(report_path(cfg.run, step), json.dumps(report, indent=2, default=_plain) + "\n")


def ingest(cfg: Config) -> Dataset:
    """load_dataset with an `ingest` report: input files, rows in and out, the cleaning counts."""
    with step_report(cfg, "ingest") as rep:
        ds = load_dataset(cfg.data, cfg.clean)
        folder = Path(cfg.data.dir)
        rows = ds.report.get("interactions", {})
        rep["inputs"] = {p.name: p.stat().st_size for p in sorted(folder.glob("*.csv"))}
        rep["cleaning"] = ds.report
        rep["summary"] = {"data": str(folder), "rows_in": rows.get("rows_in"), "rows_out": len(ds.events),
                          "items": ds.n_items, "users": ds.n_users, "test_users": len(ds.test_users)}
    return ds


def split(ds: Dataset, cfg: Config) -> Split:
    """make_split with a `split` report: the cut, history and window sizes, the users scored."""
    with step_report(cfg, "split") as rep:
        s = make_split(ds, cfg.split, cfg.seed, cfg.metric)
        rep["summary"] = {"mode": cfg.split.mode, "cut": s.history.end, "history_rows": len(s.history.events),
                          "window_rows": len(s.window), "users_scored": len(s.users)}
    return s


def _plain(value):
    """JSON for what reports hold besides builtins: numpy scalars, timestamps, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime, Path)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def summarise(run: RunConfig) -> str:
    """One block per step that has a report, in pipeline order."""
    lines = [f"run {run.dir}"]
    for step in STEPS:
        path = report_path(run, step)
        if not path.exists():
            lines.append(f"\n{step}: no report")
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        lines.append(f"\n{step}: {r['status']}  {r['started']}  {r['seconds']:.1f}s  ({r['code_version']})")
        if r.get("error"):
            lines.append(f"  error: {r['error']}")
        lines += [f"  {key}: {_fmt(value)}" for key, value in r.get("summary", {}).items()]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


COMMAND = Command(
    usage="python -m seqrec.report run.dir=RUN",
    summary="Print the summary of each step's JSON report of a run folder, in pipeline order.",
    keys=("run.dir",),
    examples=("python -m seqrec.report run.dir=runs/demo",),
)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(sys.argv[1:] if argv is None else argv)
    if not (Path(cfg.run.dir) / "reports").is_dir():
        raise UserError(f"{cfg.run.dir}/reports not found: run train.py, seqrec.evaluate or predict.py with "
                        f"run.dir={cfg.run.dir} first")
    print(summarise(cfg.run))


if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
