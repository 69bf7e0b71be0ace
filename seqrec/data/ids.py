"""External ids (the hear-me files' user_id and item_id) and the contiguous indices the models use, both ways, by
hash lookup: the one mapping the submission writer, the Python API, the service and similar tracks read, and that a
run folder keeps (RUN/ids/) so its ids are known without cleaning the log again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.io import atomic_output


@dataclass(frozen=True)
class IdMap:
    """Index i <-> external id `ids[i]`; indices below `first` are reserved (the items' PAD row 0)."""

    ids: np.ndarray
    """(n,) int64 external id of every index (reserved rows hold -1)."""
    first: int = 0

    @classmethod
    def of(cls, ids: np.ndarray, first: int = 0) -> IdMap:
        return cls(np.asarray(ids, dtype=np.int64), first)

    @property
    def _lookup(self) -> pd.Index:
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = pd.Index(self.ids[self.first:])
            object.__setattr__(self, "_index", cached)  # frozen: built once, on first use
        return cached

    def index(self, ids: np.ndarray | list[int] | int) -> np.ndarray:
        """Indices of external ids, -1 where unknown (also for a reserved row's id)."""
        found = self._lookup.get_indexer(np.atleast_1d(np.asarray(ids, dtype=np.int64))).astype(np.int64)
        return np.where(found >= 0, found + self.first, -1)

    def id(self, index: np.ndarray | int) -> np.ndarray:
        """External ids of indices."""
        return self.ids[np.asarray(index)]

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | Path) -> None:
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.r_[self.first, self.ids])

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        raw = np.load(path)
        return cls(raw[1:], int(raw[0]))
