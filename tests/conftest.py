from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import PAD
from seqrec.data.dataset import Dataset


@pytest.fixture
def hear_me(tmp_path: Path) -> Callable[..., Path]:
    """Writes a tiny hear-me folder from CSV lines (header included); `None` leaves a file out."""

    def write(
        interactions: list[str],
        items: list[str] | None = ("item_id,track_duration", "300,100", "500,200"),
        test: list[str] | None = ("user_id", "42"),
        users: list[str] | None = ("user_id,gender", "42,F"),
        future: list[str] | None = None,
        name: str = "hear_me",
    ) -> Path:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        files = {
            "interactions.csv": interactions,
            "item_metadata.csv": items,
            "test.csv": test,
            "user_metadata.csv": users,
            "future.csv": future,
        }
        for file, lines in files.items():
            if lines is not None:
                (folder / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return folder

    return write


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    """Builds a cleaned Dataset by hand: item i has id 1000 + i and lasts 100 s unless listed as invalid."""

    def build(
        events: list[tuple[int, int, str, float]],
        n_items: int,
        n_users: int,
        invalid: tuple[int, ...] = (),
        segments: list[tuple[str | None, str | None]] | None = None,
        end: str | None = None,
        future: list[tuple[int, int, str, float]] | None = None,
        test_users: list[int] | None = None,
    ) -> Dataset:
        """events / future: (user, item, 'YYYY-MM-DD HH:MM:SS', frac); segments: (age_bin, gender)."""
        valid = np.arange(n_items + 1) != PAD
        valid[list(invalid)] = False
        items = pd.DataFrame({
            "item_id": np.r_[-1, 1000 + np.arange(1, n_items + 1)],
            "track_duration": np.where(valid, 100.0, np.nan),
            "artist": np.arange(n_items + 1, dtype=np.int32),
            "known": np.arange(n_items + 1) != PAD,
            "valid": valid,
        })
        users = pd.DataFrame({"user_id": 100 + np.arange(n_users)})
        if segments is not None:
            users["age_bin"] = pd.Series([a for a, _ in segments], dtype=object)
            users["gender"] = pd.Series([g for _, g in segments], dtype=object)

        def frame(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
            u, i, t, f = zip(*rows, strict=True) if rows else ((), (), (), ())
            df = pd.DataFrame({
                "user": np.array(u, dtype=np.int32),
                "item": np.array(i, dtype=np.int32),
                "ts": np.array(t, dtype="datetime64[us]"),
                "frac": np.array(f, dtype=np.float32),
            })
            df.insert(3, "duration", (df["frac"] * 100).astype(np.float32))  # listened seconds
            df["frac"] = np.where(valid[df["item"]], df["frac"], np.nan).astype(np.float32)  # unknown length
            return df.sort_values(["user", "ts"], kind="stable").reset_index(drop=True)

        ev = frame(events)
        end_ts = pd.Timestamp(end) if end else (ev["ts"].max() + pd.Timedelta(days=1)).normalize()
        test = np.array(test_users if test_users is not None else sorted(set(ev["user"])), dtype=np.int64)
        return Dataset(ev, items, users, test, end_ts, frame(future) if future is not None else None)

    return build


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine, tiny models run ~100x faster than with thread hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """The `tiny` synthetic hear-me preset (seed 0), written once per test session."""
    from seqrec.synth import PRESETS, generate

    folder = tmp_path_factory.mktemp("tiny_synth")
    generate(PRESETS["tiny"], folder)
    return folder


TINY_RUN = ["preset=tiny"]
"""A few seconds of training: the ranking stage is fitted on a 40-user validation sample."""


@pytest.fixture(scope="session")
def tiny_run(tiny_synth, tmp_path_factory) -> Path:
    """A tiny trained run on the tiny synthetic set, trained once per session; tests only read it."""
    from seqrec.config import load_config
    from seqrec.train import train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config([f"data.dir={tiny_synth}", f"run.dir={run}", *TINY_RUN]))
    finally:
        torch.set_num_threads(threads)
    return run
