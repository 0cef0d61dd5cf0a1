"""`chimera backtest` on the bundled real samples: summary line, --json, files, reports.

Data: data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz (Binance spot BTC/USDT 1m) and
btcusdt_1d_binance_20170817_20250826.csv (daily), see data/samples/README.md.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import SUMMARY_KEYS, run
from chimera_lab.cli import main
from chimera_lab.data import load_ohlcv

SUMMARY = re.compile(r"^Sharpe: -?\d+\.\d\d \| MaxDD: -?\d+\.\d% \| CAGR: -?\d+\.\d%$")
BTC_1M = "btcusdt_1m_binance_20240726_20240825.csv.gz"
BTC_1D = "btcusdt_1d_binance_20170817_20250826.csv"
FUNDING = "btcusdt_perp_funding_binance_20190910_20260207.csv"


def chimera(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kelly_on_the_real_sample_reproduced_by_hand(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path
) -> None:
    csv = str(samples_dir / BTC_1M)
    trades_csv, equity_csv = tmp_path / "trades.csv", tmp_path / "equity.csv"
    args = ["--csv", csv, "--strategy", "kelly", "--initial-capital", "100000"]
    code, out, err = chimera(
        capsys, *args, "--trades", str(trades_csv), "--equity", str(equity_csv)
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert any(line.startswith("n_trades") for line in lines[:-1])  # the table comes first

    code, js, err = chimera(capsys, *args, "--json")
    assert code == 0, err
    stats = json.loads(js)
    assert list(stats) == list(SUMMARY_KEYS)

    # Every number of the summary line, by hand from the exported equity and trades.
    eq = pd.read_csv(equity_csv, index_col=0, parse_dates=True)["equity"].to_numpy()
    trades = pd.read_csv(trades_csv)
    prev = np.concatenate([[100_000.0], eq[:-1]])
    r = eq / prev - 1
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(525_600)  # 1-minute bars, 365-day year
    peak = np.maximum.accumulate(np.concatenate([[100_000.0], eq]))[1:]
    max_dd = (eq / peak - 1).min()
    years = 43_209 / 525_600  # bars x one minute (the sample has no gaps)
    cagr = (eq[-1] / 100_000) ** (1 / years) - 1
    assert (
        lines[-1] == f"Sharpe: {sharpe:.2f} | MaxDD: {max_dd * 100:.1f}% | CAGR: {cagr * 100:.1f}%"
    )
    assert stats["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    assert stats["max_drawdown"] == pytest.approx(max_dd, rel=1e-9)
    assert stats["cagr"] == pytest.approx(cagr, rel=1e-9)
    assert stats["final_equity"] == pytest.approx(100_000 + trades["pnl"].sum(), rel=1e-9)
    assert stats["fees"] == pytest.approx(trades["fees"].sum(), rel=1e-9)
    assert stats["n_trades"] == len(trades) > 0
    assert stats["win_rate"] == pytest.approx((trades["pnl"] > 0).mean())
    assert stats["total_return"] == pytest.approx(eq[-1] / 100_000 - 1, rel=1e-9)


def test_json_prints_only_the_stats(capsys: pytest.CaptureFixture[str], samples_dir: Path) -> None:
    code, out, err = chimera(
        capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", "sma_cross",
        "--param", "fast=10", "--param", "slow=50", "--json",
    )  # fmt: skip
    assert code == 0, err
    stats = json.loads(out)
    assert set(stats) == set(SUMMARY_KEYS)
    assert stats["n_trades"] > 10


def test_report_is_self_contained_with_stats_and_provenance(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "tear.html"
    code, out, err = chimera(
        capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", "breakout",
        "--param", "lookback=55", "--report", str(report),
    )  # fmt: skip
    assert code == 0, err
    html = report.read_text()
    summary = out.strip().splitlines()[-1]
    assert summary in html
    assert html.count("data:image/png;base64,") == 4  # equity+dd, monthly, rolling Sharpe, trades
    assert 'src="http' not in html and "<script" not in html  # nothing external
    for key in SUMMARY_KEYS:
        assert f"<th>{key}</th>" in html
    assert "--strategy breakout --param lookback=55" in html
    assert "2017-08-17" in html and "2025-08-26" in html  # the data range


def test_strategy_from_a_file(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "import pandas as pd\n\n"
        "def above_sma(data: pd.DataFrame, window: int = 50) -> pd.Series:\n"
        "    '''Long above the SMA.'''\n"
        "    return (data['close'] > data['close'].rolling(window).mean()).astype(float)\n"
    )
    code, out, err = chimera(
        capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", f"{path}:above_sma",
        "--param", "window=100",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("above_sma {'window': 100}")


def test_funding_file_with_shorts(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path
) -> None:
    trades = tmp_path / "t.csv"
    code, out, err = chimera(
        capsys, "--csv", str(samples_dir / BTC_1D), "--start", "2020-01-01",
        "--strategy", "sma_cross", "--allow-short", "--funding", str(samples_dir / FUNDING),
        "--trades", str(trades),
    )  # fmt: skip
    assert code == 0, err
    funding_line = next(line for line in out.splitlines() if line.startswith("funding"))
    assert funding_line.split()[-1] != "0.00"
    assert set(pd.read_csv(trades)["side"]) == {"long", "short"}


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], samples_dir: Path) -> None:
    code, _, err = chimera(capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", "sma_crss")
    assert code == 2 and err.startswith("error: unknown strategy 'sma_crss'; did you mean")
    code, _, err = chimera(capsys, "--csv", str(samples_dir / BTC_1D))
    assert code == 2 and "--strategy is required" in err
    code, _, err = chimera(
        capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", "sma_cross", "--param", "fats=3"
    )
    assert code == 2 and "did you mean fast" in err


def test_list_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = chimera(capsys, "--list-strategies")
    assert code == 0
    for name in ("sma_cross", "rsi_reversion", "breakout", "bollinger_reversion", "kelly"):
        assert re.search(rf"^{name}\(", out, re.MULTILINE)


def test_buy_and_hold_on_the_daily_sample_by_hand(samples_dir: Path) -> None:
    data = load_ohlcv(samples_dir / BTC_1D)
    res = run(data, lambda d: pd.Series(1.0, index=d.index), fee_bps=10)
    units = 100_000 / (data["open"].iloc[1] * 1.001)  # bought at the second bar's open
    assert res.stats["final_equity"] == pytest.approx(units * data["close"].iloc[-1], rel=1e-12)
    assert res.trades["exit_reason"].tolist() == ["open"]
    assert res.stats["n_bars"] == len(data) == 2_932


def test_bars_from_the_store(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    from chimera_lab.data import Store
    from chimera_lab.data.samples import import_sample

    import_sample(Store(store_url), "btcusdt_1m")
    code, out, err = chimera(
        capsys, "--symbol", "BTCUSDT", "--timeframe", "1m", "--store", store_url,
        "--start", "2024-08-01", "--end", "2024-08-10", "--strategy", "sma_cross", "--json",
    )  # fmt: skip
    assert code == 0, err
    stats = json.loads(out)
    # the same bars from the file give the same backtest (--end is inclusive: 10 Aug 00:00)
    data = load_ohlcv(Path(__file__).parents[2] / "data" / "samples" / BTC_1M)
    t0, t1 = pd.Timestamp("2024-08-01", tz="UTC"), pd.Timestamp("2024-08-10", tz="UTC")
    want = run(data.loc[t0:t1], "sma_cross")
    assert stats["final_equity"] == pytest.approx(want.stats["final_equity"], rel=1e-12)


def test_kelly_with_risk_uses_the_environments_risk_settings(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chimera_lab.config import Settings
    from chimera_lab.risk import RiskManager

    monkeypatch.setenv("CHIMERA_RISK__MAX_EXPOSURE", "0.3")
    monkeypatch.setenv("CHIMERA_RISK__DRAWDOWN_KILL", "0.5")
    csv = samples_dir / BTC_1D
    params = ["--param", "base_params={'fast': 5, 'slow': 20}", "--allow-short"]
    code, js, err = chimera(
        capsys, "--csv", str(csv), "--strategy", "kelly", *params, "--param", "risk=True", "--json"
    )
    assert code == 0, err
    stats = json.loads(js)
    data = load_ohlcv(csv)
    kw = {"base_params": {"fast": 5, "slow": 20}, "allow_short": True}
    manager = RiskManager(Settings(_env_file=None))
    assert manager.settings.max_exposure == 0.3  # read from the environment
    want = run(data, "kelly", risk=manager, **kw)
    assert want.signal.abs().max() == pytest.approx(0.3)
    assert stats["final_equity"] == pytest.approx(want.stats["final_equity"], rel=1e-12)
    assert stats["n_trades"] == want.stats["n_trades"]
    unchecked = run(data, "kelly", **kw)
    assert unchecked.stats["final_equity"] != pytest.approx(stats["final_equity"], rel=1e-6)
    code, out, _ = chimera(capsys, "--csv", str(csv), "--strategy", "kelly", *params,
                           "--param", "risk=True")  # fmt: skip
    assert "RiskManager(max_exposure=0.3, max_leverage=1, drawdown_kill=0.5" in out.splitlines()[0]


def test_bad_start_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    # --start goes through the one time rule (frames.to_utc): NaT is not "no bound".
    for bad in ("NaT", "not-a-date"):
        code, out, err = chimera(
            capsys, "--csv", str(samples_dir / BTC_1D), "--strategy", "sma_cross", "--start", bad
        )
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith("error: ") and "--start" in err
