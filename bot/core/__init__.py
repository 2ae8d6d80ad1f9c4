"""The forecasting core: pure functions over DataFrames and arrays (numpy, pandas, scikit-learn)."""

from bot.core.backtesting import backtest, positions_from_scores, strategy_returns, trade_returns
from bot.core.bundle import ModelBundle, OodSummary, Thresholds
from bot.core.daily_report import (
    DayFacts,
    audit_path,
    complete_audit,
    daily_anomalies,
    daily_markdown,
    daily_paths,
    daily_summary,
    notes_path,
)
from bot.core.drift_rule import (
    COMPARISON_LABELS,
    GAUGE_WINDOW,
    METRICS,
    MIN_SIGNALS,
    SAME_PERIOD,
    SIGNALS,
    STORED,
    Comparison,
    Metric,
    compared,
    drift,
    gauge_values,
)
from bot.core.estimators import (
    MODEL_TYPES,
    make_pipeline,
    predict_scores,
    supported_model_types,
    supports,
)
from bot.core.evaluation import EvaluationReport, evaluate_model
from bot.core.features import (
    FEATURE_NAMES,
    WARMUP_BARS,
    _rolling_mean_std,
    build_features,
    build_features_tail,
    complete_feature_rows,
    feature_rows,
)
from bot.core.intervals import binance_interval, parse_interval, periods_per_year
from bot.core.live_period import batch_live_rows
from bot.core.live_scores import LIVE_COLUMNS, live_metrics, resolve, resolve_all
from bot.core.ood import ood_distances, ood_summary
from bot.core.parity import LiveSignal, ParityResult, batch_scores, check_parity
from bot.core.planning import COST_ORDER, Combination, plan
from bot.core.promotion import RECENT_PREFIX, PromotionRule, decide
from bot.core.recalibration import Proposal, proposal_markdown, propose, wants_recalibration
from bot.core.review import latency_percentiles, recommend, review_markdown
from bot.core.sequences import make_dataset, to_windows, window_names
from bot.core.targets import make_target, neutral_score
from bot.core.training import TrainResult, new_version, train_model
from bot.core.walkforward import WalkForwardConfig, choose_thresholds, make_folds, run_walk_forward
from bot.core.weekly_report import weekly_markdown, weekly_paths, weekly_rows

__all__ = [
    "COMPARISON_LABELS",
    "COST_ORDER",
    "FEATURE_NAMES",
    "GAUGE_WINDOW",
    "LIVE_COLUMNS",
    "METRICS",
    "MIN_SIGNALS",
    "MODEL_TYPES",
    "RECENT_PREFIX",
    "SAME_PERIOD",
    "SIGNALS",
    "STORED",
    "WARMUP_BARS",
    "Combination",
    "Comparison",
    "DayFacts",
    "EvaluationReport",
    "LiveSignal",
    "Metric",
    "ModelBundle",
    "OodSummary",
    "ParityResult",
    "PromotionRule",
    "Proposal",
    "Thresholds",
    "TrainResult",
    "WalkForwardConfig",
    "_rolling_mean_std",
    "audit_path",
    "backtest",
    "batch_live_rows",
    "batch_scores",
    "binance_interval",
    "build_features",
    "build_features_tail",
    "check_parity",
    "choose_thresholds",
    "compared",
    "complete_audit",
    "complete_feature_rows",
    "daily_anomalies",
    "daily_markdown",
    "daily_paths",
    "daily_summary",
    "decide",
    "drift",
    "evaluate_model",
    "feature_rows",
    "gauge_values",
    "latency_percentiles",
    "live_metrics",
    "make_dataset",
    "make_folds",
    "make_pipeline",
    "make_target",
    "neutral_score",
    "new_version",
    "notes_path",
    "ood_distances",
    "ood_summary",
    "parse_interval",
    "periods_per_year",
    "plan",
    "positions_from_scores",
    "predict_scores",
    "proposal_markdown",
    "propose",
    "recommend",
    "resolve",
    "resolve_all",
    "review_markdown",
    "run_walk_forward",
    "strategy_returns",
    "supported_model_types",
    "supports",
    "to_windows",
    "trade_returns",
    "train_model",
    "wants_recalibration",
    "weekly_markdown",
    "weekly_paths",
    "weekly_rows",
    "window_names",
]
