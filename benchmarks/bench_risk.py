"""Risk benchmarks: rolling historical VaR vs pandas, Monte Carlo portfolio VaR vs plain numpy.

Run: ``.venv/bin/python benchmarks/bench_risk.py [--n 1000000] [--window 1440] [--repeat 5]``.

Each comparison runs both sides in the same process, interleaved, and reports the best of
``--repeat`` runs (the minimum is the least noisy estimate on a shared machine) and the
median. Numba compile time is measured separately (first call). Values are checked: the
rolling VaR must be *identical* to pandas' (``np.array_equal``), the Monte Carlo VaR must
agree with the numpy baseline within sampling error. Results go to
``benchmarks/results/bench_risk.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.risk import portfolio_var, rolling_var
from chimera_lab.risk._kernels import rolling_quantile

RESULTS = Path(__file__).resolve().parent / "results" / "bench_risk.json"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(
    fns: dict[str, Callable[[], Any]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            dt, last[name] = timed(fn)
            times[name].append(dt)
    return times, last


def stats_ms(ts: list[float]) -> dict[str, float]:
    return {"best_ms": min(ts) * 1e3, "median_ms": statistics.median(ts) * 1e3}


def bench_rolling(n: int, window: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    returns = pd.Series(rng.standard_t(3, n) * 0.001)
    # Real 1-minute returns have many exact ties (zero returns); include some.
    returns.iloc[rng.choice(n, n // 10, replace=False)] = 0.0
    alpha = 1 - 0.99
    compile_s, _ = timed(lambda: rolling_quantile(returns.to_numpy()[:10], 4, 4, 0.5, 0))

    def ours() -> pd.Series:
        return rolling_var(returns, window, confidence=0.99)

    def pandas_ref() -> pd.Series:
        return -returns.shift(1).rolling(window).quantile(alpha)

    times, out = interleave(
        {"chimera rolling_var": ours, "pandas rolling.quantile": pandas_ref}, repeat
    )
    identical = bool(
        np.array_equal(
            out["chimera rolling_var"].to_numpy(),
            out["pandas rolling.quantile"].to_numpy(),
            equal_nan=True,
        )
    )
    s_ours = stats_ms(times["chimera rolling_var"])
    s_pd = stats_ms(times["pandas rolling.quantile"])
    return {
        "n_returns": n,
        "window": window,
        "numba_first_call_s": compile_s,
        "chimera": s_ours,
        "pandas": s_pd,
        "speedup_best": s_pd["best_ms"] / s_ours["best_ms"],
        "speedup_median": s_pd["median_ms"] / s_ours["median_ms"],
        "identical_values": identical,
    }


def bench_monte_carlo(n_sims: int, n_assets: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    a = rng.normal(size=(n_assets, n_assets))
    cov = (a @ a.T / n_assets + np.eye(n_assets)) * 1e-4
    hist = pd.DataFrame(rng.multivariate_normal(np.zeros(n_assets), cov, 2_000))
    w = np.full(n_assets, 1.0 / n_assets)
    mu_s, cov_s = hist.mean().to_numpy(), hist.cov().to_numpy()

    def numpy_baseline() -> float:
        g = np.random.default_rng(1)
        p = g.multivariate_normal(mu_s, cov_s, n_sims) @ w
        q = np.quantile(p, 0.01)
        return float(-q)

    def ours_normal() -> float:
        return portfolio_var(
            hist, w, method="monte_carlo", distribution="normal", n_sims=n_sims, seed=1
        ).var

    def ours_t() -> float:
        return portfolio_var(
            hist, w, method="monte_carlo", distribution="t", n_sims=n_sims, seed=1
        ).var

    ours_normal()
    ours_t()
    times, out = interleave(
        {
            "numpy multivariate_normal": numpy_baseline,
            "chimera MC normal": ours_normal,
            "chimera MC t (df fit)": ours_t,
        },
        repeat,
    )
    base = stats_ms(times["numpy multivariate_normal"])
    normal = stats_ms(times["chimera MC normal"])
    student = stats_ms(times["chimera MC t (df fit)"])
    return {
        "n_sims": n_sims,
        "n_assets": n_assets,
        "numpy": base,
        "chimera_normal": normal,
        "chimera_t": student,
        "ratio_normal_vs_numpy_best": normal["best_ms"] / base["best_ms"],
        "var_numpy": out["numpy multivariate_normal"],
        "var_chimera_normal": out["chimera MC normal"],
        "var_chimera_t": out["chimera MC t (df fit)"],
        "includes": "component/marginal VaR and CVaR (chimera); VaR only (numpy)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=1440)
    ap.add_argument("--sims", type=int, default=100_000)
    ap.add_argument("--assets", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    roll = bench_rolling(args.n, args.window, args.repeat)
    mc = bench_monte_carlo(args.sims, args.assets, max(args.repeat, 7))

    print(f"\nrolling historical VaR: {roll['n_returns']:,} returns, window {roll['window']}")
    print(f"{'':28s}{'best ms':>10s}{'median ms':>12s}")
    print(
        f"{'pandas rolling.quantile':28s}{roll['pandas']['best_ms']:10.1f}"
        f"{roll['pandas']['median_ms']:12.1f}"
    )
    print(
        f"{'chimera rolling_var (numba)':28s}{roll['chimera']['best_ms']:10.1f}"
        f"{roll['chimera']['median_ms']:12.1f}"
    )
    print(
        f"speed-up: {roll['speedup_best']:.1f}x (best), {roll['speedup_median']:.1f}x (median);"
        f" identical values: {roll['identical_values']}; numba first call "
        f"{roll['numba_first_call_s']:.2f} s (compile, or load from the on-disk cache)"
    )

    print(f"\nMonte Carlo portfolio VaR: {mc['n_sims']:,} scenarios x {mc['n_assets']} assets")
    print(f"{'':28s}{'best ms':>10s}{'median ms':>12s}{'VaR':>10s}")
    for label, key, var in (
        ("numpy multivariate_normal", "numpy", mc["var_numpy"]),
        ("chimera MC normal", "chimera_normal", mc["var_chimera_normal"]),
        ("chimera MC t (df fit)", "chimera_t", mc["var_chimera_t"]),
    ):
        print(f"{label:28s}{mc[key]['best_ms']:10.1f}{mc[key]['median_ms']:12.1f}{var:10.5f}")
    print(f"chimera normal / numpy (best): {mc['ratio_normal_vs_numpy_best']:.2f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "bench_risk",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "machine": platform.machine(),
        "rolling_var": roll,
        "monte_carlo": mc,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
