"""Durable store of posted listening events: a small interface and its embedded SQLite implementation."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # the hear-me format; as text it sorts in time order
BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another connection's lock on the file


@dataclass(frozen=True)
class Event:
    """One posted listening event, in the external ids of the hear-me files."""

    user_id: int
    item_id: int
    listened_duration: float
    """Seconds, >= 0."""
    listened_datetime: datetime
    """Naive, like the log's times."""
    seq: int = 0
    """Position in the store, 1, 2, ... in the order the events were acknowledged; 0 before it is stored."""


class EventStore(Protocol):
    """What the service needs from an event store; a server database can replace the SQLite one."""

    def add(self, event: Event) -> int:
        """Persist one event durably before returning its sequence number."""
        ...

    def for_user(self, user_id: int) -> list[Event]:
        """A user's events in the order they were stored."""
        ...

    def since(self, seq: int = 0) -> list[Event]:
        """Every event stored after sequence number `seq`, in order (0: all)."""
        ...

    def close(self) -> None:
        ...


class SqliteEventStore:
    """Events in one SQLite file: WAL journal, synchronous=FULL.

    FULL fsyncs the WAL on every commit, so an acknowledged event survives a power loss or an OS crash, not
    only a crash of the service (NORMAL would keep the latter and may lose the last commits to the former).
    One connection, serialised by a lock: the service's worker threads share it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # another process writing: wait, not fail
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "user_id INTEGER NOT NULL, item_id INTEGER NOT NULL, listened_duration REAL NOT NULL, "
                "listened_datetime TEXT NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq)")
        except sqlite3.Error as e:
            raise RuntimeError(f"{self.path}: cannot open the event store ({e}); is it an SQLite file?") from e
        self._lock = threading.Lock()

    def add(self, event: Event) -> int:
        row = (event.user_id, event.item_id, float(event.listened_duration),
               event.listened_datetime.strftime(TIME_FORMAT))
        with self._lock:
            cur = self._db.execute("INSERT INTO events (user_id, item_id, listened_duration, listened_datetime) "
                                   "VALUES (?, ?, ?, ?)", row)  # autocommit: durable once execute returns
            return int(cur.lastrowid)

    def for_user(self, user_id: int) -> list[Event]:
        return self._select("WHERE user_id = ? ORDER BY seq", (user_id,))

    def since(self, seq: int = 0) -> list[Event]:
        return self._select("WHERE seq > ? ORDER BY seq", (seq,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, where: str, args: tuple) -> list[Event]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT seq, user_id, item_id, listened_duration, listened_datetime FROM events {where}", args
            ).fetchall()
        return [Event(u, i, d, datetime.strptime(t, TIME_FORMAT), s) for s, u, i, d, t in rows]
