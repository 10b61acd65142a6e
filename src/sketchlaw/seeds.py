"""Random streams derived from coordinates, never from job order (identical results on any executor).

Every random array is drawn from ``numpy.random.default_rng(SeedSequence(seed, spawn_key=coords))`` where
``coords`` names what is drawn (a stream tag, then grid coordinates and a chunk index). Changing how work is
split into jobs or memory blocks therefore never changes a number.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Stream tags: the first spawn-key entry, one per kind of randomness.
SKETCH, TARGET, SGD_DATA, NAIVE_DATA = 1, 2, 3, 4


def rng(seed: int, *coords: int) -> np.random.Generator:
    """Generator for the stream ``coords`` of base seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(c) for c in coords)))


def coordinate_seed(*parts) -> int:
    """A 63-bit seed from arbitrary grid coordinates (e.g. experiment name, a, M, N), stable across runs."""
    text = "|".join(repr(p) if not isinstance(p, float) else float(p).hex() for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
