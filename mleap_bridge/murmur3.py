"""Spark's term hashing for HashingTF: MurmurHash3 x86 32-bit of the UTF-8 bytes, seed 42.

Spark 3+ uses ``Murmur3_x86_32.hashUnsafeBytes2``, which is the standard algorithm; the
index is the hash (as a signed int) modulo the number of features, made non-negative.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
SPARK_SEED = 42


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes, seed: int = SPARK_SEED) -> int:
    """Signed 32-bit MurmurHash3 (x86) of ``data``."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (_rotl((k * c1) & _MASK, 15) * c2) & _MASK
        h = (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & _MASK
    tail = data[full:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= (_rotl((k * c1) & _MASK, 15) * c2) & _MASK
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def spark_hash_index(term: object, num_features: int) -> int:
    """The HashingTF column of ``term`` (strings hashed as UTF-8; null hashes to the seed)."""
    h = SPARK_SEED if term is None else murmur3_32(str(term).encode("utf-8"))
    return h % num_features
