"""The promotion policy: does a freshly trained challenger replace its champion? Pure.

The rule compares out-of-sample metrics on the most recent walk-forward evaluation window: the
primary metric of the target (directional accuracy for `direction`, higher is better; MAE for
`return`, lower is better) must improve by more than `min_improvement`, and the strategy Sharpe
ratio may not be worse than the champion's by more than `sharpe_margin`. The first model of a key
is always promoted. Anything else stays a recorded challenger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.contracts import ConfigError

Metrics = Mapping[str, float | None]
RECENT_PREFIX = "recent_"

# target -> (metric name, higher is better)
PRIMARY_METRICS: dict[str, tuple[str, bool]] = {
    "direction": ("accuracy", True),
    "return": ("mae", False),
}
SHARPE = "sharpe"


@dataclass(frozen=True, slots=True)
class PromotionRule:
    min_improvement: float = 0.0
    sharpe_margin: float = 0.25
    primary: Mapping[str, tuple[str, bool]] = field(default_factory=lambda: dict(PRIMARY_METRICS))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_improvement) and self.min_improvement >= 0):
            raise ConfigError("the promotion min_improvement must be a finite number >= 0")
        if not (math.isfinite(self.sharpe_margin) and self.sharpe_margin >= 0):
            raise ConfigError("the promotion sharpe_margin must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class Decision:
    key: str
    version: str
    promote: bool
    reason: str
    metric: str
    challenger_value: float | None
    champion_value: float | None
    champion_version: str | None

    def as_record(self) -> dict[str, object]:
        return {
            "version": self.version,
            "decision": "promoted" if self.promote else "rejected",
            "reason": self.reason,
            "metric": self.metric,
            "challenger": self.challenger_value,
            "champion": self.champion_value,
            "champion_version": self.champion_version,
        }


def recent(metrics: Metrics, name: str) -> float | None:
    """The metric on the most recent window, or the overall out-of-sample one when absent."""
    for candidate in (f"{RECENT_PREFIX}{name}", name):
        value = metrics.get(candidate)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def decide(
    *,
    key: str,
    version: str,
    target: str,
    challenger: Metrics,
    champion: Metrics | None,
    champion_version: str | None,
    rule: PromotionRule,
) -> Decision:
    """Promote `version` of `key` or keep it as a challenger, with the reason in words."""
    if target not in rule.primary:
        raise ConfigError(
            f"no promotion metric for target {target!r}; known: {sorted(rule.primary)}"
        )
    metric, higher_better = rule.primary[target]
    new, old = recent(challenger, metric), recent(champion or {}, metric)

    def promoted(reason: str) -> Decision:
        return Decision(key, version, True, reason, metric, new, old, champion_version)  # noqa: FBT003

    def rejected(reason: str) -> Decision:
        return Decision(key, version, False, reason, metric, new, old, champion_version)  # noqa: FBT003

    if champion is None or champion_version is None:
        return promoted("first model of this key")
    if new is None:
        return rejected(f"challenger has no out-of-sample {metric}")
    if old is None:
        return promoted(f"champion {champion_version} has no {metric} to defend")
    gain = new - old if higher_better else old - new
    if gain <= rule.min_improvement:
        return rejected(
            f"{metric} {new:.6g} does not beat the champion's {old:.6g} by more than "
            f"{rule.min_improvement:g}",
        )
    sharpe_new, sharpe_old = recent(challenger, SHARPE), recent(champion, SHARPE)
    if (
        sharpe_new is not None
        and sharpe_old is not None
        and sharpe_new < sharpe_old - rule.sharpe_margin
    ):
        return rejected(
            f"{metric} improves but Sharpe {sharpe_new:.3f} is worse than the champion's "
            f"{sharpe_old:.3f} by more than {rule.sharpe_margin:g}",
        )
    return promoted(f"{metric} {new:.6g} beats the champion's {old:.6g}")
