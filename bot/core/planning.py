"""What to train: every symbol x target x model type that can exist, and why the others cannot.

The one plan used by the daily pipeline, `itff train`, `itff evaluate` and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.contracts import model_key
from bot.core.estimators import check_model_type, supported_model_types, supports
from bot.core.targets import check_target

# Slow model types first, so a pool of workers is not left waiting on one long task at the end.
COST_ORDER = {"hgb": 0, "rf": 1, "forest": 1}


@dataclass(frozen=True, slots=True)
class Combination:
    """One model line: a symbol, a target and a model type."""

    symbol: str
    target: str
    model_type: str

    @property
    def key(self) -> str:
        return model_key(self.symbol, self.target, self.model_type)


@dataclass(frozen=True, slots=True)
class Skip:
    key: str
    reason: str


def plan(
    symbols: Iterable[str], targets: Iterable[str], model_types: Iterable[str]
) -> tuple[list[Combination], list[Skip]]:
    """Every valid combination, slowest model types first, and a `Skip` for each one that cannot
    exist (a model type that cannot fit the target). Unknown targets or model types: `BadInput`."""
    symbols, targets, model_types = list(symbols), list(targets), list(model_types)
    valid: list[Combination] = []
    skips: list[Skip] = []
    for target in targets:
        check_target(target)
        for model_type in model_types:
            check_model_type(model_type, "direction")
            if supports(model_type, target):
                valid.extend(Combination(s.upper(), target, model_type) for s in symbols)
                continue
            usable = ", ".join(supported_model_types(target))
            reason = f"{model_type} cannot predict {target} (use {usable})"
            skips.extend(Skip(model_key(s.upper(), target, model_type), reason) for s in symbols)
    valid.sort(key=lambda line: COST_ORDER.get(line.model_type, 9))
    return valid, skips
