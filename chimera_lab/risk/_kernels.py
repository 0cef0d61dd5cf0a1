"""Numba kernels for the risk package (private).

``rolling_quantile`` is a sliding-window order statistic: two indexed binary heaps hold the
window's values split at the wanted rank (a max-heap of the ``idx + 1`` smallest, a min-heap of
the rest), so each step is one O(log w) deletion, one O(log w) insertion and at most one
O(log w) move between the heaps. Every slot of the ring buffer knows its heap and position,
which makes deleting the value leaving the window O(log w) (no search, no memmove). The heaps
live in arrays of size ``window`` (L1/L2-resident for the usual windows).

The output replicates pandas' ``Series.rolling(window, min_periods).quantile(q, interpolation)``
bit for bit: the same ``idx = int(q * (nobs - 1))`` rank arithmetic, the same interpolation
expressions, NaNs skipped and counted against ``min_periods``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["INTERPOLATIONS", "rolling_quantile"]

INTERPOLATIONS = {"linear": 0, "lower": 1, "higher": 2, "nearest": 3, "midpoint": 4}
"""pandas' interpolation names and the kernel's codes."""


# Heaps are min-heaps on keys; the low heap stores -value so its top is the largest of the low
# values. hs: slot ids, hk: keys, pos[slot]: index of the slot in its heap.


@njit(cache=True, inline="always")
def _sift_up(hs: np.ndarray, hk: np.ndarray, pos: np.ndarray, i: int) -> None:
    s = hs[i]
    k = hk[i]
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= k:
            break
        hs[i] = hs[p]
        hk[i] = hk[p]
        pos[hs[i]] = i
        i = p
    hs[i] = s
    hk[i] = k
    pos[s] = i


@njit(cache=True, inline="always")
def _sift_down(hs: np.ndarray, hk: np.ndarray, pos: np.ndarray, i: int, n: int) -> None:
    s = hs[i]
    k = hk[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] < hk[c]:
            c += 1
        if hk[c] >= k:
            break
        hs[i] = hs[c]
        hk[i] = hk[c]
        pos[hs[i]] = i
        i = c
    hs[i] = s
    hk[i] = k
    pos[s] = i


@njit(cache=True, inline="always")
def _push(hs: np.ndarray, hk: np.ndarray, pos: np.ndarray, n: int, slot: int, key: float) -> int:
    hs[n] = slot
    hk[n] = key
    _sift_up(hs, hk, pos, n)
    return n + 1


@njit(cache=True, inline="always")
def _remove(hs: np.ndarray, hk: np.ndarray, pos: np.ndarray, n: int, i: int) -> int:
    n -= 1
    if i != n:
        hs[i] = hs[n]
        hk[i] = hk[n]
        pos[hs[i]] = i
        if i > 0 and hk[i] < hk[(i - 1) >> 1]:
            _sift_up(hs, hk, pos, i)
        else:
            _sift_down(hs, hk, pos, i, n)
    return n


@njit(cache=True)
def rolling_quantile(
    values: np.ndarray, window: int, min_periods: int, quantile: float, interpolation: int
) -> np.ndarray:  # pragma: no cover - compiled; tested through rolling_var against pandas
    n = values.shape[0]
    out = np.empty(n, dtype=np.float64)
    low_s = np.empty(window, dtype=np.int64)
    low_k = np.empty(window, dtype=np.float64)
    high_s = np.empty(window, dtype=np.int64)
    high_k = np.empty(window, dtype=np.float64)
    pos = np.zeros(window, dtype=np.int64)
    where = np.zeros(window, dtype=np.int8)  # 0: empty/NaN, 1: low heap, 2: high heap
    nl = 0
    nh = 0
    nobs = 0
    for i in range(n):
        slot = i % window
        v = values[i]
        w = where[slot] if i >= window else 0
        if w != 0 and v == v:
            # Fast path: the arriving value takes the departing value's slot. Replace its key in
            # place and sift; counts do not change, so at most one swap of the heap tops
            # restores "every low value <= every high value".
            if w == 1:
                j = pos[slot]
                low_k[j] = -v
                if j > 0 and low_k[j] < low_k[(j - 1) >> 1]:
                    _sift_up(low_s, low_k, pos, j)
                else:
                    _sift_down(low_s, low_k, pos, j, nl)
            else:
                j = pos[slot]
                high_k[j] = v
                if j > 0 and high_k[j] < high_k[(j - 1) >> 1]:
                    _sift_up(high_s, high_k, pos, j)
                else:
                    _sift_down(high_s, high_k, pos, j, nh)
            if nl > 0 and nh > 0 and -low_k[0] > high_k[0]:
                a_s = low_s[0]
                a_k = low_k[0]
                b_s = high_s[0]
                b_k = high_k[0]
                low_s[0] = b_s
                low_k[0] = -b_k
                high_s[0] = a_s
                high_k[0] = -a_k
                where[b_s] = 1
                where[a_s] = 2
                _sift_down(low_s, low_k, pos, 0, nl)
                _sift_down(high_s, high_k, pos, 0, nh)
        else:
            if w == 1:
                nl = _remove(low_s, low_k, pos, nl, pos[slot])
                nobs -= 1
            elif w == 2:
                nh = _remove(high_s, high_k, pos, nh, pos[slot])
                nobs -= 1
            where[slot] = 0
            if v == v:
                if nl > 0 and v <= -low_k[0]:
                    nl = _push(low_s, low_k, pos, nl, slot, -v)
                    where[slot] = 1
                else:
                    nh = _push(high_s, high_k, pos, nh, slot, v)
                    where[slot] = 2
                nobs += 1
        # rebalance: the low heap holds the idx + 1 smallest values
        if nobs > 0:
            target = int(quantile * (nobs - 1)) + 1
        else:
            target = 0
        while nl > target:
            s = low_s[0]
            key = low_k[0]
            nl = _remove(low_s, low_k, pos, nl, 0)
            nh = _push(high_s, high_k, pos, nh, s, -key)
            where[s] = 2
        while nl < target:
            s = high_s[0]
            key = high_k[0]
            nh = _remove(high_s, high_k, pos, nh, 0)
            nl = _push(low_s, low_k, pos, nl, s, -key)
            where[s] = 1
        if nobs >= min_periods and nobs > 0:
            vlow = -low_k[0]
            if nobs == 1:
                out[i] = vlow
                continue
            iwf = quantile * (nobs - 1)
            idx = int(iwf)
            if iwf == idx:
                out[i] = vlow
                continue
            vhigh = high_k[0]
            if interpolation == 0:
                out[i] = vlow + (vhigh - vlow) * (iwf - idx)
            elif interpolation == 1:
                out[i] = vlow
            elif interpolation == 2:
                out[i] = vhigh
            elif interpolation == 3:
                if iwf - idx == 0.5:
                    out[i] = vlow if idx % 2 == 0 else vhigh
                elif iwf - idx < 0.5:
                    out[i] = vlow
                else:
                    out[i] = vhigh
            else:
                out[i] = (vlow + vhigh) / 2
        else:
            out[i] = np.nan
    return out
