"""The archive of the live tables: signals and outcomes past their retention, Parquet per month.

Layout under `ITFF_ARCHIVE_DIR`: `signals/YYYY-MM/<stamp>.parquet` (signals by month of emission,
each with its outcome's columns when it had one) and `outcomes/YYYY-MM/<stamp>.parquet` (outcomes
by month of resolution, whose signals were kept longer). A file is written whole under a temporary
name, then renamed: a reader never sees half of one. The retention job deletes rows only once their
file is written; if the deletion then fails, the next run archives them again, so readers keep one
row per `signal_id` (the newest file's).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bot.contracts import BadInput

SIGNALS = "signals"
OUTCOMES = "outcomes"
KINDS = (SIGNALS, OUTCOMES)
MONTH_TIME = {SIGNALS: "emitted_at", OUTCOMES: "resolved_at"}


def write(folder: Path, kind: str, frame: pd.DataFrame, *, stamp: str) -> list[Path]:
    """One Parquet file per month of `frame` (by emission or resolution time); their paths."""
    if frame.empty:
        return []
    months = pd.to_datetime(frame[MONTH_TIME[kind]], utc=True).dt.strftime("%Y-%m")
    written = []
    for month, rows in frame.groupby(months, sort=True):
        target = folder / kind / str(month) / f"{stamp}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        rows.reset_index(drop=True).to_parquet(partial, index=False)
        partial.replace(target)
        written.append(target)
    return written


def months(folder: Path, kind: str) -> list[str]:
    """The archived months of `kind`, oldest first."""
    base = folder / kind
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def read(folder: Path, kind: str, *, month: str | None = None) -> pd.DataFrame:
    """Every archived row of `kind` (of one `YYYY-MM` month), one per signal, oldest first."""
    if kind not in KINDS:
        raise BadInput(f"unknown archive {kind!r}; use one of {', '.join(KINDS)}")
    chosen = months(folder, kind) if month is None else [month]
    files = sorted(f for m in chosen for f in (folder / kind / m).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame = frame.drop_duplicates("signal_id", keep="last")
    return frame.sort_values(MONTH_TIME[kind]).reset_index(drop=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: signals, resolved ones, hit rate, compounded strategy return, first and last
    bar (`model_key, signals, resolved, hit_rate, total_return, first_bar, last_bar`)."""
    columns = ["model_key", "signals", "resolved", "hit_rate", "total_return"]
    if frame.empty:
        return pd.DataFrame(columns=[*columns, "first_bar", "last_bar"])
    grouped = frame.groupby("model_key", sort=True)
    resolved = frame["realised_return"].notna()
    growth = (1.0 + frame["strategy_return"].fillna(0.0)).groupby(frame["model_key"]).prod()
    hits = frame["hit"].where(resolved).astype(float).groupby(frame["model_key"]).mean()
    return (
        pd.DataFrame(
            {
                "signals": grouped.size(),
                "resolved": resolved.groupby(frame["model_key"]).sum(),
                "hit_rate": hits,
                "total_return": growth - 1.0,
                "first_bar": grouped["bar_time"].min(),
                "last_bar": grouped["bar_time"].max(),
            }
        )
        .rename_axis("model_key")
        .reset_index()
    )
