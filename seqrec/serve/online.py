"""The trained run plus the events posted since training: re-encoded histories, popular fallback, similar tracks.

A user without posted events is decoded from the whole log exactly as predict.py does, or read from the run's
offline lists (serve.lists, written by `predict.py users=all lists=FOLDER`) when they carry the digest of this
run's checkpoint and data (lists of another run or data are left unused, with a warning). A user with posted
events gets a one-user Dataset of their log events followed by the posted ones (cleaned by the log's rules),
encoded by the transformer and described by the same re-listen evidence; what must stay global (what follows
what, popularity, the catalog mask) comes from the whole log. Its prediction time is the later of the log's
end and midnight after the newest posted event (the log's own rule), so lists never depend on the wall clock.
A user known only from posted events is decoded the same way from those events alone (source `model`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from seqrec import PAD
from seqrec.baselines import popular_order
from seqrec.config import Config
from seqrec.data.clean import clean_events
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.data.rules import RULES, Rows
from seqrec.errors import UserError
from seqrec.inference.decode import Decoder
from seqrec.inference.lists import OfflineLists, lists_digest, read_lists
from seqrec.ranking.evidence import LogTables
from seqrec.ranking.rankers import top_k
from seqrec.run import Run, RunError
from seqrec.serve.store import Event
from seqrec.similar import embedding_neighbours, neighbour_mask

log = logging.getLogger(__name__)
DAY = pd.Timedelta(days=1)


class StartupError(UserError):
    """The service cannot start; the message names the file and the reason."""


class BadEvent(ValueError):
    """A posted event the service refuses; nothing is stored."""


@dataclass
class Ranked:
    """A list for one user or track, best first, in external ids."""

    items: np.ndarray
    scores: np.ndarray | None
    source: str
    songs: np.ndarray
    """Each track's song group (seqrec.data.canon): versions and duplicate uploads of one song share it."""


class OnlineRecommender:
    """Recommendations, similar tracks and histories from a trained run and the events posted since."""

    def __init__(self, run: Run, ds: Dataset):
        self.run, self.cfg, self.ds = run, run.cfg, ds
        cfg = run.cfg
        self.net = run.net
        self.tables = LogTables.build(ds, cfg.rank)  # what follows what, popularity: the whole log's, for everyone
        self.decoder = run.decoder(ds, self.tables)
        self.offsets = self.decoder.feats.offsets
        self.popular = popular_order(ds, cfg.baselines.popular_days)
        self.items, self.users = ds.item_map, ds.user_map
        self.item_ids = self.items.ids  # index -> external id; row 0 is PAD
        self.songs = ds.song_group  # index -> song group, read once: not per request
        self.allowed = ds.items["valid"].to_numpy().copy()  # writable: torch warns on read-only arrays
        self._posted_rules = dataclasses.replace(cfg.clean, start=None, end=None)  # the period is checked on post
        self._posted: dict[int, list[Event]] = {}
        self._version: dict[int, int] = {}  # bumped on every post: a cached decoder of an older version is stale
        self._cache: OrderedDict[int, tuple[int, Decoder | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.lists = self._offline_lists(cfg.serve.lists)

    def _offline_lists(self, folder: str | None) -> OfflineLists | None:
        if not folder:
            return None
        try:
            lists = read_lists(folder, self.ds, lists_digest(self.run.ckpt, self.ds))
        except (OSError, ValueError) as err:
            log.warning("serve.lists unused, every user is decoded on request: %s", err)
            return None
        log.info("serving %d users' offline lists from %s", len(lists.users), folder)
        return lists

    @property
    def n_offline(self) -> int:
        return 0 if self.lists is None else len(self.lists.users)

    @classmethod
    def load(cls, cfg: Config) -> OnlineRecommender:
        """The run of cfg.run.dir and the data set it was trained on; raises StartupError if it cannot be used."""
        try:
            run = Run.load(cfg)
            ds = load_dataset(run.cfg.data, run.cfg.clean)
            run.check_catalog(ds)
        except RunError as e:  # no model, no service
            raise StartupError(str(e)) from e
        return cls(run, ds)

    # --- events ---

    def check(self, event: Event) -> None:
        """Raise BadEvent unless the event can join the user's history: the log's cleaning rules that a posted
        event can break (seqrec.data.rules, the log's end aside: a posted event comes after it), and a time no
        later than the server's clock allows."""
        when = pd.Timestamp(event.listened_datetime)
        item = self.item_index(event.item_id)
        no = np.zeros(1, dtype=bool)
        rows = Rows(no, no, no, no, np.array([when.to_datetime64()], dtype="datetime64[us]"),
                    np.array([event.listened_duration], dtype=np.float64), np.zeros(1, np.int32), np.array([item]),
                    self.ds.items["track_duration"].to_numpy(np.float64)[[item]])
        clean = dataclasses.replace(self.cfg.clean, end=None)
        for rule in RULES:
            if rule.served is not None and rule.flags(rows, clean)[0]:
                raise BadEvent(rule.served.format(**dataclasses.asdict(event), **dataclasses.asdict(clean)))
        latest = pd.Timestamp.now() + pd.Timedelta(minutes=self.cfg.serve.clock_skew_minutes)
        if when > latest:
            raise BadEvent(f"listened_datetime {event.listened_datetime} is in the future (after "
                           f"{latest.floor('s')}, now plus serve.clock_skew_minutes)")

    def add(self, event: Event) -> None:
        """Take a checked event that is already stored."""
        with self._lock:
            self._posted.setdefault(event.user_id, []).append(event)
            self._version[event.user_id] = self._version.get(event.user_id, 0) + 1

    def replay(self, events: list[Event]) -> int:
        """Take the store's events at start-up; returns how many were taken (the rest are logged and skipped)."""
        skipped = []
        for e in events:
            try:
                self.check(e)
            except BadEvent as err:
                skipped.append(f"seq {e.seq}: {err}")
                continue
            self.add(e)
        if skipped:
            log.warning("skipped %d stored event(s) this run cannot use, e.g. %s", len(skipped), skipped[0])
        return len(events) - len(skipped)

    @property
    def n_posted(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._posted.values())

    def item_index(self, item_id: int) -> int:
        """Internal index of an external item id; PAD when it is not in the catalog."""
        return max(int(self.items.index(item_id)[0]), PAD)

    def user_index(self, user_id: int) -> int:
        """Internal index of a user of the log; -1 when the log does not know them."""
        return int(self.users.index(user_id)[0])

    def _posted_of(self, user_id: int) -> tuple[list[Event], int]:
        with self._lock:
            return list(self._posted.get(user_id, ())), self._version.get(user_id, 0)

    # --- reads ---

    def recommend(self, user_id: int, k: int) -> Ranked:
        """Top k for a user: the model on their history and posted events, or popular tracks if unknown."""
        u = self.user_index(user_id)
        posted, version = self._posted_of(user_id)
        stored = self.lists.of(u) if self.lists is not None and not posted and u >= 0 else None
        if stored is not None and k <= len(stored[0]):
            return self._ranked(stored[0][:k], stored[1][:k], "lists")
        decoder, row = (self.decoder, u) if not posted else (self._user_decoder(user_id, u, posted, version), 0)
        if decoder is None or row < 0:
            return self._ranked(self.popular[:k], None, "popular")
        items, scores = self._rank(decoder, row, k)
        return self._ranked(items, scores, "model")

    def similar(self, item_id: int, k: int) -> Ranked | None:
        """Tracks closest to a track by the model's item embeddings; None for an unknown track."""
        i = self.item_index(item_id)
        if i == PAD:
            return None
        idx, cos = embedding_neighbours(self.net.item_emb.weight.detach(), np.array([i]), k,
                                        neighbour_mask(self.ds, i, self.cfg.similar.same_song))
        keep = (idx[0] != PAD) & np.isfinite(cos[0])
        return self._ranked(idx[0][keep], cos[0][keep], "model")

    def _ranked(self, items: np.ndarray, scores: np.ndarray | None, source: str) -> Ranked:
        """A list of item indices in external ids, with their song groups."""
        return Ranked(self.item_ids[items], scores, source, self.songs[items])

    def history(self, user_id: int, limit: int) -> pd.DataFrame | None:
        """The user's newest `limit` events, log and posted; None for a user neither knows."""
        u = self.user_index(user_id)
        posted, _ = self._posted_of(user_id)
        if u < 0 and not posted:
            return None
        ev = self.ds.events.iloc[self.offsets[u]:self.offsets[u + 1]] if u >= 0 else self.ds.events.iloc[:0]
        frames = [pd.DataFrame({"item_id": self.item_ids[ev["item"].to_numpy()],
                                "listened_duration": ev["duration"].to_numpy(np.float64),
                                "listened_datetime": ev["ts"].to_numpy(), "source": "log"})]
        if posted:
            frames.append(pd.DataFrame({"item_id": [e.item_id for e in posted],
                                        "listened_duration": [e.listened_duration for e in posted],
                                        "listened_datetime": [e.listened_datetime for e in posted],
                                        "source": "posted"}))
        h = pd.concat(frames, ignore_index=True)
        return h.sort_values("listened_datetime", ascending=False, kind="stable").head(limit)

    # --- decoding ---

    def _rank(self, decoder: Decoder, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, ranking scores) of one user's best k candidates, as predict.py orders them."""
        c = decoder.candidates(self.net, np.array([row]), k)
        items, scores = top_k(c, self.run.ranker.score(c), k)
        keep = np.isfinite(scores[0])  # only a catalog smaller than k leaves a list short
        return items[0, keep], scores[0, keep]

    def _user_decoder(self, user_id: int, u: int, posted: list[Event], version: int) -> Decoder | None:
        """The decoder of a user with posted events, cached until they post again."""
        with self._lock:
            hit = self._cache.get(user_id)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(user_id)
                return hit[1]
        decoder = self.one_user_decoder(user_id, u, posted)
        with self._lock:
            if self._version.get(user_id, 0) == version:  # not if a post arrived while building
                self._cache[user_id] = (version, decoder)
                self._cache.move_to_end(user_id)
                while len(self._cache) > self.cfg.serve.cache_users:
                    self._cache.popitem(last=False)
        return decoder

    def one_user_decoder(self, user_id: int, u: int, posted: list[Event]) -> Decoder | None:
        """Features and evidence of one user's log + posted events; None if the cleaning rules left nothing."""
        events = self._user_events(user_id, u, posted)
        if events.empty:
            return None
        end = max(self.ds.end, (events["ts"].max() + DAY).normalize())
        # the user's own metadata row (demographics are ranking features); only the user id for a new user
        users = self.ds.users.iloc[[u]].reset_index(drop=True) if u >= 0 else pd.DataFrame({"user_id": [user_id]})
        one = dataclasses.replace(self.ds, events=events, users=users,
                                  test_users=np.zeros(1, np.int64), end=end, future=None, report={})
        return self.run.decoder(one, self.tables)  # the whole log's tables: a cached decoder stays small

    def _user_events(self, user_id: int, u: int, posted: list[Event]) -> pd.DataFrame:
        """The user's log events and cleaned posted events as user 0, sorted by time."""
        table = pa.table({
            "user_id": pa.array([e.user_id for e in posted], pa.int64()),
            "item_id": pa.array([e.item_id for e in posted], pa.int64()),
            "listened_duration": pa.array([e.listened_duration for e in posted], pa.float64()),
            "listened_datetime": pa.array([e.listened_datetime for e in posted], pa.timestamp("us")),
        })
        new = clean_events(table, self.ds.items, np.array([user_id], np.int64), self._posted_rules, {})
        parts = [new]
        if u >= 0:
            parts.insert(0, self.ds.events.iloc[self.offsets[u]:self.offsets[u + 1]].assign(user=np.int32(0)))
        events = pd.concat(parts, ignore_index=True)
        return events.sort_values("ts", kind="stable").reset_index(drop=True)
