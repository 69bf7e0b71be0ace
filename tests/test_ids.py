"""IdMap: external ids <-> indices both ways, the reserved PAD row never matched, saved and loaded unchanged."""

import numpy as np

from seqrec.data.ids import IdMap


def test_ids_map_both_ways_and_unknown_ids_are_minus_one(tmp_path):
    items = IdMap.of([-1, 300, 500, 90], first=1)
    np.testing.assert_array_equal(items.index([500, 90, 300, 7, -1]), [2, 3, 1, -1, -1])  # -1: PAD's placeholder
    np.testing.assert_array_equal(items.id([3, 1]), [90, 300])
    items.save(tmp_path / "ids" / "items.npy")
    again = IdMap.load(tmp_path / "ids" / "items.npy")
    assert again.first == 1 and np.array_equal(again.ids, items.ids)
    np.testing.assert_array_equal(again.index(np.array([90])), [3])
    users = IdMap.of([42, 7])
    assert users.index(7).tolist() == [1] and users.index(8).tolist() == [-1] and len(users) == 2
