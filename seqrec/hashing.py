"""Counter-based pseudo-random values: splitmix64's finaliser over uint64 keys, so a draw is a function of its key
alone (a pair, a window's position), not of a generator's state or of the order things are drawn in."""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
"""splitmix64's increment: keys offset by multiples of it (a seed, a salt) give unrelated streams."""


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of uint64 values (the products wrap around, as the hash wants)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def unit(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits of uint64 values."""
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
