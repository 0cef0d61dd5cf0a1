"""The sizing rule holds for any prices, targets and costs (without the reference's code).

Right after a signal fill at bar i's open, position value at the open equals target x equity
at the open after that fill's costs, and those costs are exactly the fee on the fill's
notional plus the slippage paid: for longs, shorts, flips, reductions and leverage. The
equity is recovered from the engine's own output (marks at the closes), not from
``bt_reference.target_units``. Tolerance: 1e-9 relative, 1e-9 x capital absolute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bt_helpers import CAPITAL, paths, run_path
from hypothesis import HealthCheck, given, settings


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths())
def test_each_signal_fill_sizes_the_position_to_target_times_equity_after_costs(
    p: dict[str, Any],
) -> None:
    res = run_path(p)
    data = p["data"]
    start = int(p["start"])
    fee, slip = float(p["fee_bps"]) / 1e4, float(p["slippage_bps"]) / 1e4
    o = data["open"].to_numpy()[start:]
    c = data["close"].to_numpy()[start:]
    target = res.signal.to_numpy()
    u = res.positions.to_numpy()
    e = res.equity.to_numpy()
    for j in range(u.size):
        i = start + j  # bar position in data
        if i == 0:
            assert u[j] == 0.0
            continue
        u_before = u[j - 1] if j > 0 else 0.0
        e_close_before = e[j - 1] if j > 0 else CAPITAL
        c_before = c[j - 1] if j > 0 else o[j]  # flat before the first traded bar
        e_before = e_close_before + u_before * (o[j] - c_before)  # marked to this open
        if e_before <= 0 or e[j] <= 0:
            break  # bankrupt: the account is closed and nothing trades afterwards
        tgt = target[i - 1]
        # the target the book was last traded to (flat before the first bar that can trade)
        acted = 0.0 if i == max(start, 1) else target[i - 2]
        if tgt == acted:
            assert u[j] == u_before, "an unchanged target is not re-traded"
            continue
        d = u[j] - u_before
        # equity at this open right after the fill (no stop, no funding: cash is unchanged
        # from the fill to the close)
        e_after = e[j] - u[j] * (c[j] - o[j])
        px = o[j] * (1 + slip) if d > 0 else o[j] * (1 - slip)
        cost = abs(d) * px * fee + abs(d) * o[j] * slip
        assert e_after == pytest.approx(e_before - cost, rel=1e-9, abs=1e-9 * CAPITAL)
        if tgt == 0.0:
            assert u[j] == 0.0
        else:
            assert u[j] * o[j] == pytest.approx(tgt * e_after, rel=1e-9, abs=1e-9 * CAPITAL)
    # the side is the target's: shorts, flips and reductions all go through the checks above
    held = np.flatnonzero(u != 0)
    assert np.array_equal(np.sign(u[held]), np.sign(target[start + held - 1]))
