"""Which signals a subscriber wants: symbols, model keys, actions (empty = all)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.contracts import Signal


@dataclass(frozen=True, slots=True)
class SignalFilter:
    """Matches a signal when each given set holds its value; an empty set matches everything."""

    symbols: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        symbols: Iterable[str] = (),
        models: Iterable[str] = (),
        actions: Iterable[str] = (),
    ) -> SignalFilter:
        return cls(
            frozenset(s.upper() for s in symbols),
            frozenset(models),
            frozenset(a.lower() for a in actions),
        )

    def matches(self, signal: Signal) -> bool:
        return (
            (not self.symbols or signal.symbol in self.symbols)
            and (not self.models or signal.model_key in self.models)
            and (not self.actions or signal.action in self.actions)
        )
