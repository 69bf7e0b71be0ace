"""The cleaning rules of the interactions log, each written once: the rows it flags as a numpy predicate (the
in-memory engine, seqrec.data.clean, and the service's check of a posted event) and as a SQL predicate (the DuckDB
engine, seqrec.data.outofcore), with the report key that counts them. Adding a rule is one entry in RULES.

The rules apply in order; each counts the rows still kept that it flags. Exact duplicates are dropped between the
rules that read ids and times (`before_dedup`) and those that read the listened duration; `negative` and
`overlong` may fix a row (zero it, clip it) instead of dropping it, as their settings say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seqrec import PAD
from seqrec.config import CleanConfig


@dataclass
class Rows:
    """The columns the rules read, one entry per raw row (the SQL side names them alike)."""

    user_id_null: np.ndarray
    item_id_null: np.ndarray
    ts_null: np.ndarray
    dur_null: np.ndarray
    ts: np.ndarray
    """datetime64[us] (`ts`)."""
    dur: np.ndarray
    """Listened seconds, float (`dur`); the engine updates it as rules fix rows (SQL reads the fix in the
    predicate: a zeroed negative is `greatest(dur, 0)`)."""
    user: np.ndarray
    """User index, -1 where unknown (`user`, NULL where unknown)."""
    item: np.ndarray
    """Item index, PAD where unknown (`item`, NULL where unknown)."""
    track: np.ndarray
    """The track's length in seconds, NaN where unknown (`track`)."""


@dataclass(frozen=True)
class Rule:
    name: str
    key: Callable[[CleanConfig], str]
    """The cleaning report's key of the rows it flags."""
    flags: Callable[[Rows, CleanConfig], np.ndarray]
    sql: Callable[[CleanConfig], str]
    """The same predicate over the columns of Rows (never NULL: false where it cannot judge)."""
    drops: Callable[[CleanConfig], bool] = lambda cfg: True
    """Whether a flagged row is dropped (else the engine fixes it: see the module's doc)."""
    before_dedup: bool = False
    served: str | None = None
    """The service refuses a posted event the rule flags (the log's end not applying to it), with this reason,
    formatted with the event's fields and the cleaning settings (None: not checked there)."""


def _outside(r: Rows, cfg: CleanConfig) -> np.ndarray:
    out = np.zeros(len(r.ts), dtype=bool)
    if cfg.start is not None:
        out |= r.ts < np.datetime64(cfg.start, "us")
    if cfg.end is not None:
        out |= r.ts >= np.datetime64(cfg.end, "us")
    return out & ~r.ts_null


def _outside_sql(cfg: CleanConfig) -> str:
    start = f"TIMESTAMP '{cfg.start}'" if cfg.start is not None else "NULL"
    end = f"TIMESTAMP '{cfg.end}'" if cfg.end is not None else "NULL"
    return f"(coalesce(ts < {start}, false) OR coalesce(ts >= {end}, false))"


RULES = (
    Rule("missing ids or time", lambda cfg: "dropped_missing_ids_or_time",
         lambda r, cfg: r.user_id_null | r.item_id_null | r.ts_null,
         lambda cfg: "(user_id IS NULL OR item_id IS NULL OR ts IS NULL)", before_dedup=True),
    Rule("missing duration", lambda cfg: "dropped_missing_duration", lambda r, cfg: r.dur_null,
         lambda cfg: "dur IS NULL", before_dedup=True),
    Rule("outside the period", lambda cfg: "dropped_outside_period", _outside, _outside_sql, before_dedup=True,
         served="listened_datetime {listened_datetime} is before the log's start {start} (clean.start): the log "
                "treats such times as export bugs"),
    Rule("unknown user", lambda cfg: "dropped_unknown_user", lambda r, cfg: r.user < 0,
         lambda cfg: "user IS NULL", before_dedup=True),
    Rule("unknown item", lambda cfg: "dropped_unknown_item_id", lambda r, cfg: r.item == PAD,
         lambda cfg: "item IS NULL", before_dedup=True, served="item_id {item_id} is not in the catalogue"),
    Rule("not finite or over the longest listen", lambda cfg: "dropped_nonfinite_or_over_max_listen",
         lambda r, cfg: ~(np.abs(r.dur) <= cfg.max_listen_hours * 3600),
         lambda cfg: f"NOT coalesce(abs(dur) <= {cfg.max_listen_hours * 3600}, false)",
         served="listened_duration {listened_duration} s is over clean.max_listen_hours ({max_listen_hours})"),
    Rule("negative", lambda cfg: f"negative_duration_{'dropped' if cfg.negative == 'drop' else 'zeroed'}",
         lambda r, cfg: r.dur < 0, lambda cfg: "dur < 0", drops=lambda cfg: cfg.negative == "drop"),
    Rule("overlong", lambda cfg: f"overlong_{'clipped' if cfg.overlong == 'clip' else 'dropped'}",
         lambda r, cfg: r.dur > cfg.max_duration_ratio * r.track,  # NaN track: false, unknown lengths not judged
         lambda cfg: f"coalesce({'dur' if cfg.negative == 'drop' else 'greatest(dur, 0)'} > "
                     f"{cfg.max_duration_ratio} * track, false)",
         drops=lambda cfg: cfg.overlong == "drop"),
)
"""The rules in the order they apply."""
