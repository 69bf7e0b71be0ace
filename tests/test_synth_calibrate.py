"""Window facts on hand-made logs, the calibration command on the tiny preset, and the tiny preset's ladder."""

import json

import numpy as np
import pytest

from seqrec.config import SplitConfig, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.synth import facts
from seqrec.synth.calibrate import FACTS, Fact, main, measure


@pytest.fixture
def split(make_dataset):
    """One user, cut 2025-06-30. Track 1 every 4 days, last 3 days before the cut: due, and back in the window
    (full). Track 3 every 30 days, last also 3 days before: early, and not back. Track 2 once, back at half.
    Track 4 new in the window at three quarters."""
    history = [(0, 1, "2025-06-16 10:00:00", 1.0), (0, 1, "2025-06-20 10:00:00", 1.0),
               (0, 1, "2025-06-24 10:00:00", 1.0), (0, 1, "2025-06-27 10:00:00", 1.0),
               (0, 3, "2025-04-28 10:00:00", 1.0), (0, 3, "2025-05-28 10:00:00", 1.0),
               (0, 3, "2025-06-27 11:00:00", 1.0), (0, 2, "2025-06-01 10:00:00", 0.3)]
    window = [(0, 1, "2025-07-02 10:00:00", 1.0), (0, 1, "2025-07-03 10:00:00", 0.2),
              (0, 2, "2025-07-05 10:00:00", 0.5), (0, 4, "2025-07-06 10:00:00", 0.8)]
    ds = make_dataset(history, n_items=5, n_users=1, end="2025-06-30", future=window, test_users=[0])
    return make_split(ds, SplitConfig(mode="future"), seed=0)


def test_pool_credit_splits_the_window_by_what_was_played_before(split):
    pools = facts.pool_credit(split)
    assert pools.played == pytest.approx(1.5)  # track 1 (its best listen, 1.0) + track 2 (0.5)
    assert pools.never_played == pytest.approx(0.75)
    assert pools.replay_quarter == pytest.approx(0.75)


def test_captured_shares_of_each_pool(split):
    played, new = facts.captured(split, np.array([[2, 4, 5]]))
    assert played == pytest.approx(0.5 / 1.5) and new == pytest.approx(1.0)


def test_cadence_compares_due_and_early_tracks_at_the_same_recency(split):
    c = facts.cadence(split, window_days=15)
    assert c.pairs == 2  # tracks 1 and 3 have three play days or more; track 2 has one
    assert (c.due, c.early, c.gap) == (1.0, 0.0, 1.0)


def test_cadence_needs_the_next_play_by_rhythm_inside_the_window(split):
    c = facts.cadence(split, window_days=30)  # with a 30-day window track 3 is due too
    assert np.isnan(c.due - c.early)  # no recency bucket holds both kinds


def test_fact_bands():
    f = Fact("x", "x", "-", 0.1, 0.2)
    assert f.inside(0.15) and not f.inside(0.25) and not f.inside(float("nan"))
    assert Fact("y", "y", "-", 1.0).inside(3.0) and Fact("y", "y", "-", 1.0).band == ">= 1.000"
    assert Fact("z", "z", "-").inside(5.0) is None  # context only


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    out = tmp_path_factory.mktemp("calibration")
    code = main(["--preset", "tiny", "--seeds", "3", "--out", str(out), "sessions_per_day=0.2"])
    return out, code


def test_calibration_writes_the_table_the_values_and_the_plot(calibration):
    out, code = calibration
    assert code in (0, 1)
    data = json.loads((out / "calibration.json").read_text())
    assert data["knobs"] == {"sessions_per_day": 0.2} and data["preset"] == "tiny"
    assert set(data["columns"]) == {"seed 3 temporal", "seed 3 future"}
    for column in data["columns"].values():
        assert set(column) == {f.key for f in FACTS}
    table = (out / "calibration.md").read_text().splitlines()
    assert table[0].startswith("| fact | real log | band | seed 3 temporal | seed 3 future | inside |")
    assert len(table) == 2 + len(FACTS)
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_refuses_an_unknown_knob(capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "tiny", "no_such_knob=1"])
    assert "no_such_knob" in capsys.readouterr().err


def test_tiny_preset_keeps_the_ladder(tiny_synth):
    cfg = load_config([f"data.dir={tiny_synth}"])
    split = make_split(load_dataset(cfg.data, cfg.clean), cfg.split, cfg.seed)
    m = measure(split, cfg)
    assert m["popular"] < m["als"] < m["relisten"] <= m["transitions"]
