"""A run folder holds one run: a lock while it trains, no artifact left from an earlier training, its state
(training or complete) and the digest of the config.yaml every checkpoint of it was written with.

- `RUN/.lock` (pid, host, start) is taken before training writes anything and released on exit; a lock whose
  process is gone (same host, pid not alive) is stale and taken over with a warning; a live one refuses.
- Training afresh removes the earlier run's checkpoints and lists (and, resumed, its refit): a later predict.py
  never decodes with a network another training left.
- `RUN/state.json` says `training` until the run (its refit included) finishes, then `complete`; Run.load refuses
  a run that did not finish unless the command names the checkpoint (`ckpt=best` or `ckpt=last`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from seqrec.config import RunConfig
from seqrec.errors import UserError
from seqrec.io import pid_alive, write_atomic

LOCK = ".lock"
STATE = "state.json"
STALE = ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "checkpoints/refit.ckpt", "checkpoints/.refit.ckpt.partial",
         "predict_shards", STATE)
"""What an earlier training leaves that a new one must not let a reader mistake for its own (relative to RUN)."""


def config_digest(config_yaml: str) -> str:
    """The digest of a run's resolved config, stored in each checkpoint and checked on load."""
    return hashlib.sha256(config_yaml.encode()).hexdigest()[:16]


def _primary() -> bool:
    """The process that owns the folder: under DDP every process runs train(), the first takes the lock."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


@contextmanager
def training(run: RunConfig, resume: bool) -> Iterator[None]:
    """Hold RUN's lock while training; before anything is written, remove what an earlier training left (all of
    STALE afresh; only the refit and the lists when resuming, as the resumed run refits again)."""
    folder = check_folder(run)
    if not _primary():
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    _acquire(folder / LOCK)
    try:
        stale = [p for p in STALE if (folder / p).exists()
                 and not (resume and p in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", STATE))]
        for p in stale:
            target = folder / p
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        if stale:
            print(f"{run.dir}: removed what an earlier training left: {', '.join(stale)}")
        set_state(run, "training")
        yield
    finally:
        (folder / LOCK).unlink(missing_ok=True)


def check_folder(run: RunConfig) -> Path:
    """RUN as a path, refused in one line when it names a file."""
    folder = Path(run.dir)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"run.dir={run.dir} is a file, not a folder; choose another run.dir")
    return folder


def _acquire(lock: Path) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _read_json(lock)
            if holder.get("host") == me["host"] and not pid_alive(holder.get("pid")):
                warnings.warn(f"{lock}: taking over a stale lock of pid {holder.get('pid')} (no longer running)",
                              stacklevel=3)
                lock.unlink(missing_ok=True)
                continue
            raise UserError(f"{lock.parent} is being trained by pid {holder.get('pid')} on {holder.get('host')} "
                            f"since {holder.get('started')}: wait for it, choose another run.dir, or remove {lock} if "
                            "that process is gone") from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        return
    raise UserError(f"{lock}: could not take the lock")


def set_state(run: RunConfig, state: str) -> None:
    """RUN/state.json: `training` or `complete`, with the time (the primary process only)."""
    if _primary():
        write_atomic(Path(run.dir) / STATE, json.dumps({"state": state, "at": _now()}) + "\n")


def state(run_dir: str | Path) -> dict | None:
    """RUN/state.json, or None for a run written before runs recorded their state."""
    path = Path(run_dir) / STATE
    return _read_json(path) if path.exists() else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
