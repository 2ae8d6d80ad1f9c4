"""The vectorised backtest agrees with a plain loop to 1e-9, and its conventions hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.contracts import BadInput
from bot.core import Thresholds, backtest, positions_from_scores, strategy_returns, trade_returns

PPY = 252.0


def loop_backtest(positions, returns, cost_bps, ppy):
    """The conventions of bot.core.backtesting written as the obvious loop."""
    cost = cost_bps / 10_000
    strat, equity, prev, value = [], [], 0.0, 1.0
    for p, r in zip(positions, returns, strict=True):
        s = p * r - cost * abs(p - prev)
        value *= 1 + s
        strat.append(s)
        equity.append(value)
        prev = p
    trades, current, pnl, side = [], 0.0, 0.0, 0.0
    for p, r in zip(positions, returns, strict=True):
        if p != current:
            if current != 0:
                trades.append(pnl - cost * abs(current))  # exit cost of the closed trade
            pnl = -cost * abs(p) if p != 0 else 0.0
            current = p
        if p != 0:
            pnl += p * r
            side = p
    if current != 0:
        trades.append(pnl)  # still open at the end: no exit cost
    del side
    n = len(strat)
    mean = sum(strat) / n
    sd = math.sqrt(sum((s - mean) ** 2 for s in strat) / (n - 1))
    downside = math.sqrt(sum(min(s, 0.0) ** 2 for s in strat) / n)
    peak, drawdown = 1.0, 0.0
    for e in equity:
        peak = max(peak, e)
        drawdown = max(drawdown, 1 - e / peak)
    wins = [t for t in trades if t > 0]
    losses = [t for t in trades if t < 0]
    return {
        "strat": strat,
        "equity": equity,
        "trades": trades,
        "total_return": equity[-1] - 1,
        "cagr": equity[-1] ** (ppy / n) - 1,
        "sharpe": mean / sd * math.sqrt(ppy) if sd > 0 else None,
        "sortino": mean / downside * math.sqrt(ppy) if downside > 0 else None,
        "max_drawdown": drawdown,
        "profit_factor": sum(wins) / -sum(losses) if losses else None,
        "win_rate": len(wins) / len(trades) if trades else None,
        "exposure": sum(1 for p in positions if p != 0) / n,
        "n_trades": float(len(trades)),
    }


def _signal_series():
    rng = np.random.default_rng(7)
    n = 600
    returns = rng.normal(0.0003, 0.012, n)
    yield "random long/short", rng.choice([-1.0, 1.0], n), returns
    yield "random long/flat/short", rng.choice([-1.0, 0.0, 1.0], n), returns
    yield "long-flat", rng.choice([0.0, 1.0], n, p=[0.3, 0.7]), returns
    yield "always long", np.ones(n), returns
    yield "alternating", np.tile([1.0, -1.0], n // 2), returns
    yield "sticky regimes", np.repeat(rng.choice([-1.0, 0.0, 1.0], n // 25), 25), returns
    yield "ends flat", np.concatenate((rng.choice([-1.0, 1.0], n - 10), np.zeros(10))), returns


@pytest.mark.parametrize("cost_bps", [0.0, 1.0, 7.5])
@pytest.mark.parametrize(("name", "positions", "returns"), list(_signal_series()))
def test_vectorised_backtest_matches_the_loop(name, positions, returns, cost_bps):
    result = backtest(positions, returns, cost_bps=cost_bps, periods_per_year=PPY)
    expected = loop_backtest(list(positions), list(returns), cost_bps, PPY)
    np.testing.assert_allclose(result.strategy_returns, expected["strat"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.equity, expected["equity"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result.trade_returns, expected["trades"], rtol=0, atol=1e-9)
    for key, value in result.metrics.items():
        if expected[key] is None:
            assert value is None, (name, key)
        else:
            assert value == pytest.approx(expected[key], rel=1e-9, abs=1e-9), (name, key)


def test_a_reversal_pays_two_sides_and_the_first_entry_one():
    strat = strategy_returns(np.array([1.0, -1.0, -1.0]), np.zeros(3), cost_bps=10)
    np.testing.assert_allclose(strat, [-0.001, -0.002, 0.0])


def test_trades_are_runs_of_one_nonzero_position():
    positions = np.array([0.0, 1.0, 1.0, 0.0, -1.0, 1.0])
    returns = np.array([0.5, 0.01, 0.02, 0.5, -0.03, 0.04])
    trades = trade_returns(positions, returns, cost_bps=0)
    np.testing.assert_allclose(trades, [0.03, 0.03, 0.04])


def test_positions_from_scores_long_short_and_long_flat():
    scores = np.array([0.2, 0.45, 0.5, 0.7])
    rule = Thresholds(buy=0.6, sell=0.4)
    np.testing.assert_array_equal(positions_from_scores(scores, rule), [-1, 0, 0, 1])
    flat = positions_from_scores(scores, rule, allow_short=False)
    np.testing.assert_array_equal(flat, [0, 0, 0, 1])


def test_misaligned_or_non_finite_inputs_are_refused():
    with pytest.raises(BadInput, match="align"):
        backtest(np.ones(3), np.ones(4), cost_bps=1, periods_per_year=PPY)
    with pytest.raises(
        BadInput, match=r"^positions and returns must be finite numbers \(found NaN or inf\)$"
    ):
        backtest(np.ones(2), np.array([0.1, np.nan]), cost_bps=1, periods_per_year=PPY)


def test_equity_frame_has_the_contract_columns():
    import pandas as pd

    times = pd.date_range("2020-01-01", periods=4, tz="UTC")
    result = backtest(np.ones(4), np.full(4, 0.01), cost_bps=0, periods_per_year=PPY)
    frame = result.equity_frame(times)
    assert list(frame.columns) == ["time", "position", "strategy_return", "equity"]
    assert frame["equity"].iloc[-1] == pytest.approx(1.01**4)


def test_a_score_on_a_threshold_takes_that_side():
    rule = Thresholds(buy=0.6, sell=0.4)
    np.testing.assert_array_equal(positions_from_scores(np.array([0.4, 0.6]), rule), [-1, 1])


def test_an_empty_window_and_a_single_bar():
    empty = backtest(np.zeros(0), np.zeros(0), cost_bps=5, periods_per_year=PPY)
    assert empty.trade_returns.shape == (0,)
    assert empty.metrics["total_return"] is None
    assert empty.metrics["n_trades"] == 0.0
    # one bar held long: +2 % less one entry side of 10 bps, still open (no exit cost)
    one = backtest(np.ones(1), np.array([0.02]), cost_bps=10, periods_per_year=PPY)
    np.testing.assert_allclose(one.trade_returns, [0.019])
    assert one.metrics["total_return"] == pytest.approx(0.019)
    np.testing.assert_array_equal(one.positions, [1.0])


def test_a_half_position_pays_half_the_cost_per_side():
    # 0.5 unit held two bars then closed: 0.5 * (1 % + 1 %) less 2 sides x 0.5 x 10 bps
    trades = trade_returns(np.array([0.5, 0.5, 0.0]), np.array([0.01, 0.01, 0.3]), cost_bps=10)
    np.testing.assert_allclose(trades, [0.01 - 0.001])


def test_decimal_inputs_from_a_numeric_database_column_are_read_as_floats():
    from decimal import Decimal

    positions = [Decimal(1), Decimal(-1), Decimal(0)]
    returns = [Decimal("0.01"), Decimal("-0.02"), Decimal("0.5")]
    result = backtest(positions, returns, cost_bps=0, periods_per_year=PPY)
    assert result.positions.dtype == np.float64
    np.testing.assert_allclose(result.strategy_returns, [0.01, 0.02, 0.0])
    np.testing.assert_allclose(trade_returns(positions, returns, cost_bps=0), [0.01, 0.02])
