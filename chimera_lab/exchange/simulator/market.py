"""Replayed market data: closed bars, the evolving open bar, candles, ticker, book, funding.

One :class:`MarketData` holds the bars of one symbol as numpy arrays (Unix ms open times and
float64 prices) and answers "what does the market look like at market time ``t``":

* bars whose close time ``open + timeframe <= t`` are **closed** and final;
* the bar containing ``t`` is **open**: its price walks a fixed intrabar path
  ``open → low → high → close`` for an up bar (``close >= open``) and
  ``open → high → low → close`` otherwise, each leg a third of the bar (the common backtest
  convention). Its partial high/low are the extremes of the path so far, its volume is the bar
  volume times the elapsed fraction, so the open bar evolves and ends at the recorded values;
* past the last bar, synthetic continuation bars (a seeded random walk with the replayed
  data's volatility) are appended on demand, so a live clock never runs dry.

Coarser candles (5m, 1H, 1D, 1W, 1M ...) are aggregated from the replayed bars, with buckets
aligned to UTC midnight (weeks to Monday 00:00 UTC, months to the 1st). Bitget's plain
``1day``/``1D`` bars may be aligned to UTC+8 instead of UTC — **unverified**; the simulator
treats them like their ``...utc`` twins.

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> md = MarketData("BTCUSDT", make_ohlcv(3, seed=1, start="2024-01-01"), price_decimals=2)
>>> t0 = md.ts[0]
>>> md.closed_count(t0 + 60_000), md.price_at(t0) == float(md.open[0])
(1, True)
>>> bool(abs(md.price_at(t0 + 60_000 - 1) - md.close[0]) < 0.1)  # ends at its close
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, DataError
from chimera_lab.frames import validate_ohlcv
from chimera_lab.timeframes import infer_bar_spacing

__all__ = [
    "GRANULARITIES",
    "Granularity",
    "MarketData",
    "parse_granularity",
    "fmt",
    "split_symbol",
]

_MIN = 60_000
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_WEEK_OFFSET = 4 * _DAY  # 1970-01-01 was a Thursday; weeks start on Monday 00:00 UTC


@dataclass(frozen=True)
class Granularity:
    """A candle size: ``ms`` long (``months`` > 0 for calendar months)."""

    name: str
    ms: int
    months: int = 0

    def bucket(self, ts_ms: np.ndarray) -> np.ndarray:
        """Return the bucket open time of each timestamp."""
        if self.months:
            dt = pd.to_datetime(ts_ms, unit="ms")
            month_index = dt.year * 12 + dt.month - 1
            period = (month_index // self.months) * self.months
            starts = pd.to_datetime({"year": period // 12, "month": period % 12 + 1, "day": 1})
            return np.asarray(starts.to_numpy().astype("datetime64[ms]").astype(np.int64))
        if self.ms % (7 * _DAY) == 0:
            return ((ts_ms - _WEEK_OFFSET) // self.ms) * self.ms + _WEEK_OFFSET
        return (ts_ms // self.ms) * self.ms

    def next_start(self, bucket_ms: int) -> int:
        """Return the open time of the bucket after the one opening at ``bucket_ms``."""
        if self.months:
            ts = pd.Timestamp(bucket_ms, unit="ms", tz="UTC")
            return int((ts + pd.DateOffset(months=self.months)).value // 1_000_000)
        return bucket_ms + self.ms


def _g(name: str, ms: int, months: int = 0) -> Granularity:
    return Granularity(name, ms, months)


_COMMON = {
    "1M": _g("1M", 31 * _DAY, 1),
    "6Hutc": _g("6Hutc", 6 * _HOUR),
    "12Hutc": _g("12Hutc", 12 * _HOUR),
    "1Dutc": _g("1Dutc", _DAY),
    "3Dutc": _g("3Dutc", 3 * _DAY),
    "1Wutc": _g("1Wutc", 7 * _DAY),
    "1Mutc": _g("1Mutc", 31 * _DAY, 1),
}

GRANULARITIES: dict[str, dict[str, Granularity]] = {
    "spot": {
        "1min": _g("1min", _MIN),
        "3min": _g("3min", 3 * _MIN),
        "5min": _g("5min", 5 * _MIN),
        "15min": _g("15min", 15 * _MIN),
        "30min": _g("30min", 30 * _MIN),
        "1h": _g("1h", _HOUR),
        "4h": _g("4h", 4 * _HOUR),
        "6h": _g("6h", 6 * _HOUR),
        "12h": _g("12h", 12 * _HOUR),
        "1day": _g("1day", _DAY),
        "3day": _g("3day", 3 * _DAY),
        "1week": _g("1week", 7 * _DAY),
        **_COMMON,
    },
    "mix": {
        "1m": _g("1m", _MIN),
        "3m": _g("3m", 3 * _MIN),
        "5m": _g("5m", 5 * _MIN),
        "15m": _g("15m", 15 * _MIN),
        "30m": _g("30m", 30 * _MIN),
        "1H": _g("1H", _HOUR),
        "4H": _g("4H", 4 * _HOUR),
        "6H": _g("6H", 6 * _HOUR),
        "12H": _g("12H", 12 * _HOUR),
        "1D": _g("1D", _DAY),
        "3D": _g("3D", 3 * _DAY),
        "1W": _g("1W", 7 * _DAY),
        **_COMMON,
    },
    "ws": {
        f"candle{k}": _g(f"candle{k}", v.ms, v.months)
        for k, v in {
            "1m": _g("", _MIN),
            "5m": _g("", 5 * _MIN),
            "15m": _g("", 15 * _MIN),
            "30m": _g("", 30 * _MIN),
            "1H": _g("", _HOUR),
            "4H": _g("", 4 * _HOUR),
            "6H": _g("", 6 * _HOUR),
            "12H": _g("", 12 * _HOUR),
            "1D": _g("", _DAY),
            "3D": _g("", 3 * _DAY),
            "1W": _g("", 7 * _DAY),
            **_COMMON,
        }.items()
    },
}
"""Candle sizes per API family: ``spot`` REST, ``mix`` (futures) REST, ``ws`` channels."""


def parse_granularity(family: str, name: str) -> Granularity | None:
    """Return the :class:`Granularity` called ``name`` in ``family``, or ``None``."""
    return GRANULARITIES[family].get(name)


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split ``BTCUSDT`` into ``("BTC", "USDT")`` (quote USDT, USDC or USD).

    >>> split_symbol("ETHUSDT")
    ('ETH', 'USDT')
    """
    for quote in ("USDT", "USDC", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ConfigError(f"cannot split symbol {symbol!r} into base and quote (…USDT, …USDC, …USD)")


def _default_decimals(price: float) -> int:
    # A tick of about 1e-6 of the price (BTC ~ 30,000 -> 0.01), as Bitget lists majors.
    if not price > 0:
        return 2
    return int(min(8, max(0, 6 - math.floor(math.log10(price)))))


class MarketData:
    """The replayed market of one symbol (see the module docstring).

    Parameters
    ----------
    symbol : str
        Exchange symbol, e.g. ``"BTCUSDT"``.
    bars : DataFrame
        OHLCV bars in the frame convention (validated), evenly spaced apart from gaps.
    price_decimals : int, optional
        Prices are rounded to this many decimals (the tick); default from the first price.
    seed : int
        Seed of the synthetic continuation.
    level_notional : float
        Quote value of each level of the synthetic order book.
    """

    def __init__(
        self,
        symbol: str,
        bars: pd.DataFrame,
        *,
        price_decimals: int | None = None,
        seed: int = 0,
        level_notional: float = 25_000.0,
    ) -> None:
        validate_ohlcv(bars, name=f"bars of {symbol}")
        if len(bars) < 2:
            raise DataError(f"bars of {symbol}: need at least 2 bars to replay, got {len(bars)}")
        self.symbol = symbol
        self.base_coin, self.quote_coin = split_symbol(symbol)
        spacing = infer_bar_spacing(pd.DatetimeIndex(bars.index))
        self.tf_ms = int(spacing / pd.Timedelta(milliseconds=1))
        if self.tf_ms < _MIN or self.tf_ms % _MIN:
            raise DataError(
                f"bars of {symbol}: spacing {spacing} is not a whole number of minutes; "
                "replay 1m (or coarser) bars"
            )
        first = float(bars["open"].iloc[0])
        self.price_decimals = _default_decimals(first) if price_decimals is None else price_decimals
        self.tick = 10.0 ** (-self.price_decimals)
        self.seed = seed
        self.level_notional = level_notional
        idx = pd.DatetimeIndex(bars.index)
        self.ts = np.asarray(idx.as_unit("ms").asi8, dtype=np.int64)
        d = self.price_decimals
        self.open = np.round(bars["open"].to_numpy(np.float64), d)
        self.high = np.round(bars["high"].to_numpy(np.float64), d)
        self.low = np.round(bars["low"].to_numpy(np.float64), d)
        self.close = np.round(bars["close"].to_numpy(np.float64), d)
        self.volume = np.round(bars["volume"].to_numpy(np.float64), 6)
        rets = np.diff(np.log(self.close))
        rets = rets[np.isfinite(rets)]
        self._vol = float(np.std(rets)) if len(rets) > 10 else 0.001
        self._chunks = 0

    # -- the series ------------------------------------------------------------------------
    @property
    def end_ms(self) -> int:
        """Close time of the last bar currently held."""
        return int(self.ts[-1]) + self.tf_ms

    def ensure(self, until_ms: int) -> None:
        """Append synthetic continuation bars until the series covers ``until_ms``."""
        while self.end_ms <= until_ms:
            n = max(1_000, int((until_ms - self.end_ms) // self.tf_ms) + 2)
            n = min(n, 100_000)
            self._append_synthetic(n)

    def _append_synthetic(self, n: int) -> None:
        self._chunks += 1
        rng = np.random.default_rng([self.seed, self._chunks])
        vol = max(self._vol, 1e-5)
        last = float(self.close[-1])
        log_ret = rng.normal(0.0, vol, n)
        close = last * np.exp(np.cumsum(log_ret))
        open_ = np.empty(n)
        open_[0] = last
        open_[1:] = close[:-1]
        wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
        high = np.maximum(open_, close) * (1 + wick[0])
        low = np.minimum(open_, close) * (1 - wick[1])
        mean_vol = float(np.mean(self.volume[-min(len(self.volume), 1440) :]))
        volume = rng.gamma(2.0, max(mean_vol, 1e-9) / 2.0, n)
        d = self.price_decimals
        open_, high, low, close = (np.round(a, d) for a in (open_, high, low, close))
        high = np.maximum(high, np.maximum(open_, close))
        low = np.minimum(low, np.minimum(open_, close))
        ts = self.ts[-1] + self.tf_ms * np.arange(1, n + 1, dtype=np.int64)
        self.ts = np.concatenate([self.ts, ts])
        self.open = np.concatenate([self.open, open_])
        self.high = np.concatenate([self.high, high])
        self.low = np.concatenate([self.low, low])
        self.close = np.concatenate([self.close, close])
        self.volume = np.concatenate([self.volume, np.round(volume, 6)])

    def closed_count(self, now_ms: int) -> int:
        """Return the number of bars closed at ``now_ms`` (their index range is ``[0, count)``)."""
        # bar i is closed when ts[i] + tf <= now, i.e. ts[i] <= now - tf: shift the scalar, not
        # the array (this runs on every ticker/candle/WS push; ts can hold millions of bars).
        return int(np.searchsorted(self.ts, now_ms - self.tf_ms, side="right"))

    def bar_at(self, now_ms: int) -> int | None:
        """Index of the bar open at ``now_ms`` (``None`` in a gap or before the data)."""
        self.ensure(now_ms)
        i = int(np.searchsorted(self.ts, now_ms, side="right")) - 1
        if i < 0 or now_ms >= self.ts[i] + self.tf_ms:
            return None
        return i

    # -- the intrabar path -----------------------------------------------------------------
    def _vertices(self, i: int) -> tuple[float, float, float, float]:
        o, h, low, c = self.open[i], self.high[i], self.low[i], self.close[i]
        if c >= o:
            return float(o), float(low), float(h), float(c)
        return float(o), float(h), float(low), float(c)

    def _path(self, i: int, f: float) -> float:
        v = self._vertices(i)
        f = min(max(f, 0.0), 1.0)
        leg = min(int(f * 3), 2)
        local = f * 3 - leg
        return float(v[leg] + (v[leg + 1] - v[leg]) * local)

    def _extremes(self, i: int, f0: float, f1: float) -> tuple[float, float]:
        pts = [self._path(i, f0), self._path(i, f1)]
        v = self._vertices(i)
        for k, fk in ((1, 1 / 3), (2, 2 / 3)):
            if f0 < fk < f1:
                pts.append(v[k])
        return min(pts), max(pts)

    def _frac(self, i: int, ms: int) -> float:
        return (ms - int(self.ts[i])) / self.tf_ms

    def price_at(self, now_ms: int) -> float:
        """Last traded price at ``now_ms`` (rounded to the tick)."""
        i = self.bar_at(now_ms)
        if i is None:
            j = int(np.searchsorted(self.ts, now_ms, side="right")) - 1
            return float(self.close[max(j, 0)] if j >= 0 else self.open[0])
        return float(round(self._path(i, self._frac(i, now_ms)), self.price_decimals))

    def open_bar(self, now_ms: int) -> tuple[int, float, float, float, float, float] | None:
        """Return the open bar at ``now_ms`` as ``(ts, open, high, low, close, volume)`` so far."""
        i = self.bar_at(now_ms)
        if i is None:
            return None
        f = self._frac(i, now_ms)
        lo, hi = self._extremes(i, 0.0, f)
        d = self.price_decimals
        return (
            int(self.ts[i]),
            float(self.open[i]),
            round(hi, d),
            round(lo, d),
            round(self._path(i, f), d),
            round(float(self.volume[i]) * f, 6),
        )

    def first_cross(self, t0_ms: int, t1_ms: int, price: float, *, below: bool) -> int | None:
        """First time in ``(t0, t1]`` the path trades strictly below (or above) ``price``."""
        if t1_ms <= t0_ms:
            return None
        self.ensure(t1_ms)
        i0 = int(np.searchsorted(self.ts, t0_ms, side="right")) - 1
        i1 = int(np.searchsorted(self.ts, t1_ms, side="right")) - 1
        i0 = max(i0, 0)
        if i1 < i0:
            return None
        # Partial first bar.
        f_end = self._frac(i1, t1_ms) if i1 == i0 else 1.0
        hit = self._cross_in_bar(i0, max(self._frac(i0, t0_ms), 0.0), f_end, price, below)
        if hit is not None:
            return hit
        if i1 == i0:
            return None
        # Whole bars in between: the first whose low/high passes the price.
        lo_i, hi_i = i0 + 1, i1  # bars i0+1 .. i1-1 are whole, i1 is partial
        if hi_i > lo_i:
            passes = self.low[lo_i:hi_i] < price if below else self.high[lo_i:hi_i] > price
            k = int(np.argmax(passes)) if passes.size else 0
            if passes.size and passes[k]:
                j = lo_i + k
                return self._cross_in_bar(j, 0.0, 1.0, price, below)
        return self._cross_in_bar(i1, 0.0, min(self._frac(i1, t1_ms), 1.0), price, below)

    def _cross_in_bar(self, i: int, f0: float, f1: float, price: float, below: bool) -> int | None:
        f1 = min(f1, 1.0)
        if f1 <= f0:
            return None
        t_start = int(self.ts[i])
        t_end = t_start + math.floor(f1 * self.tf_ms)
        bounds = [f0] + [fk for fk in (1 / 3, 2 / 3) if f0 < fk < f1] + [f1]
        for a, b in zip(bounds, bounds[1:], strict=False):
            pa, pb = self._path(i, a), self._path(i, b)
            if (pa < price) if below else (pa > price):
                return min(t_start + math.floor(a * self.tf_ms) + 1, t_end)
            if (pb < price) if below else (pb > price):
                # A linear leg: the path passes the price at frac; it fills just after.
                frac = a + (b - a) * (price - pa) / (pb - pa)
                return min(t_start + math.floor(frac * self.tf_ms) + 1, t_end)
        return None

    # -- views -----------------------------------------------------------------------------
    def candles(
        self,
        gran: Granularity,
        *,
        now_ms: int,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        include_open: bool,
        min_ms: int | None = None,
    ) -> list[tuple[int, float, float, float, float, float, float]]:
        """Return up to ``limit`` candles ``(ts, o, h, l, c, base_vol, quote_vol)``, oldest first.

        Buckets with ``start <= ts < end`` are selected (Bitget's inclusivity is
        **unverified**; ccxt's ``fetch_ohlcv`` asks for ``[since, since + limit × bar)`` and
        expects the bar at ``since`` first, which needs exactly this rule); when more than
        ``limit`` qualify the newest ``limit`` are returned (anchored on ``endTime``, as
        observed on Bitget). ``include_open`` adds
        the still-open bucket. ``min_ms`` cuts off older data (reach of the recent endpoint).
        """
        if gran.ms < self.tf_ms and not gran.months:
            return []
        self.ensure(now_ms)
        n_closed = self.closed_count(now_ms)
        upper = now_ms if end_ms is None else min(end_ms - 1, now_ms)
        # Base bars that can belong to a selected bucket.
        first_bucket = int(gran.bucket(np.array([upper], dtype=np.int64))[0])
        span = (limit + 1) * (gran.ms if not gran.months else 31 * _DAY * gran.months)
        lo_ms = first_bucket - span
        for bound in (start_ms, min_ms):
            if bound is not None:
                lo_ms = max(lo_ms, int(gran.bucket(np.array([bound], dtype=np.int64))[0]))
        i_lo = int(np.searchsorted(self.ts, lo_ms, side="left"))
        i_hi = int(np.searchsorted(self.ts, upper, side="right"))
        i_hi_closed = min(i_hi, n_closed)
        ts = self.ts[i_lo:i_hi_closed]
        o, h = self.open[i_lo:i_hi_closed], self.high[i_lo:i_hi_closed]
        lo, c = self.low[i_lo:i_hi_closed], self.close[i_lo:i_hi_closed]
        v = self.volume[i_lo:i_hi_closed]
        ob = self.open_bar(now_ms) if include_open else None
        if ob is not None and i_hi > i_hi_closed and ob[0] <= upper:
            ts = np.append(ts, ob[0])
            o, h, lo, c, v = (
                np.append(a, x) for a, x in zip((o, h, lo, c, v), ob[1:], strict=True)
            )
        if ts.size == 0:
            return []
        buckets = gran.bucket(ts)
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        b_ts = buckets[starts]
        b_open = o[starts]
        b_high = np.maximum.reduceat(h, starts)
        b_low = np.minimum.reduceat(lo, starts)
        b_close = c[np.r_[starts[1:] - 1, len(c) - 1]]
        b_vol = np.add.reduceat(v, starts)
        b_qvol = np.add.reduceat(v * c, starts)
        # A bucket is closed when its end is reached; otherwise it is the open one.
        ends = np.array([gran.next_start(int(t)) for t in b_ts], dtype=np.int64)
        keep = ends <= now_ms if not include_open else np.ones(len(b_ts), dtype=bool)
        if start_ms is not None:
            keep &= b_ts >= start_ms
        if end_ms is not None:
            keep &= b_ts < end_ms
        if min_ms is not None:
            keep &= b_ts >= min_ms
        sel = np.flatnonzero(keep)[-limit:] if limit > 0 else np.array([], dtype=np.int64)
        d = self.price_decimals
        return [
            (
                int(b_ts[k]),
                float(b_open[k]),
                round(float(b_high[k]), d),
                round(float(b_low[k]), d),
                float(b_close[k]),
                round(float(b_vol[k]), 6),
                round(float(b_qvol[k]), 4),
            )
            for k in sel
        ]

    def book(
        self, now_ms: int, depth: int
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Synthetic order book ``(bids, asks)`` around the price at ``now_ms``.

        The best bid is the price rounded down to the tick, the best ask one tick above; level
        ``k`` is ``k`` steps of about 1 bp further out, with size ``level_notional / price``
        times ``1 + k/5``. It does not deplete: every order sees the same book.
        """
        mid = self.price_at(now_ms)
        tick = self.tick
        best_bid = math.floor(mid / tick + 1e-9) * tick
        best_ask = best_bid + tick
        step = max(1, round(mid * 1e-4 / tick)) * tick
        base = self.level_notional / max(mid, 1e-12)
        d = self.price_decimals
        bids = [(round(best_bid - k * step, d), round(base * (1 + k / 5), 6)) for k in range(depth)]
        asks = [(round(best_ask + k * step, d), round(base * (1 + k / 5), 6)) for k in range(depth)]
        return [b for b in bids if b[0] > 0], asks

    def stats_24h(self, now_ms: int) -> dict[str, float]:
        """Open, high, low and volumes over the last 24 hours, and the price change."""
        last = self.price_at(now_ms)
        i_lo = int(np.searchsorted(self.ts, now_ms - _DAY, side="left"))
        n = self.closed_count(now_ms)
        hs, ls = list(self.high[i_lo:n]), list(self.low[i_lo:n])
        vol = float(np.sum(self.volume[i_lo:n]))
        qvol = float(np.sum(self.volume[i_lo:n] * self.close[i_lo:n]))
        ob = self.open_bar(now_ms)
        if ob is not None:
            hs.append(ob[2])
            ls.append(ob[3])
            vol += ob[5]
            qvol += ob[5] * ob[4]
        open24 = float(self.open[i_lo]) if i_lo < len(self.open) else last
        day0 = int(np.searchsorted(self.ts, (now_ms // _DAY) * _DAY, side="left"))
        open_utc = float(self.open[day0]) if day0 < len(self.open) else last
        return {
            "last": last,
            "open24h": open24,
            "high24h": max(hs) if hs else last,
            "low24h": min(ls) if ls else last,
            "baseVolume": vol,
            "quoteVolume": qvol,
            "openUtc": open_utc,
            "change24h": (last - open24) / open24 if open24 else 0.0,
            "changeUtc24h": (last - open_utc) / open_utc if open_utc else 0.0,
        }

    def funding_rate(self, funding_ms: int, interval_ms: int) -> float:
        """Return the synthetic funding rate settled at ``funding_ms``.

        0.01 % plus 5 % of the last interval's return, clipped to ±0.3 % (Bitget's usual
        cap), rounded to 1e-6.
        """
        p1 = self.price_at(funding_ms)
        p0 = self.price_at(funding_ms - interval_ms)
        ret = (p1 - p0) / p0 if p0 else 0.0
        return round(min(max(0.0001 + 0.05 * ret, -0.003), 0.003), 6)


def fmt(value: float, decimals: int) -> str:
    """Format a number as Bitget does: a plain decimal string without exponent."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
