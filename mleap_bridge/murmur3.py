"""Spark's term hashing for HashingTF: MurmurHash3 x86 32-bit of the UTF-8 bytes, seed 42.

Spark 3+ uses ``Murmur3_x86_32.hashUnsafeBytes2``, which is the standard algorithm (MLeap's
``hashUnsafeBytesVersion`` 2). Spark 2 used ``hashUnsafeBytes`` (version 1, what MLeap assumes
when a bundle has no such attribute): it mixes each trailing byte — sign-extended — as a
block of its own. The index is the hash (as a signed int) modulo the number of features,
made non-negative.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
SPARK_SEED = 42


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


_C1, _C2 = 0xCC9E2D51, 0x1B873593


def _mix_k(k: int) -> int:
    return (_rotl((k * _C1) & _MASK, 15) * _C2) & _MASK


def _mix_h(h: int, k: int) -> int:
    return (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & _MASK


def murmur3_32(data: bytes, seed: int = SPARK_SEED, version: int = 2) -> int:
    """Signed 32-bit MurmurHash3 (x86) of ``data``; ``version=1`` is Spark 2's variant."""
    h = seed & _MASK
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        h = _mix_h(h, _mix_k(int.from_bytes(data[i:i + 4], "little")))
    tail = data[full:]
    if version == 1:
        for byte in tail:  # each byte as a signed int, mixed like a whole block
            h = _mix_h(h, _mix_k((byte - 256 if byte > 127 else byte) & _MASK))
    elif tail:
        h ^= _mix_k(int.from_bytes(tail, "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def spark_hash_index(term: object, num_features: int, version: int = 2) -> int:
    """The HashingTF column of ``term`` (strings hashed as UTF-8; null hashes to the seed)."""
    h = SPARK_SEED if term is None else murmur3_32(str(term).encode("utf-8"), SPARK_SEED, version)
    return h % num_features
