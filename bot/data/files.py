"""Bars from CSV or Parquet: one file, or a folder holding `{SYMBOL}_*.csv` / `{SYMBOL}_*.parquet`.

Column names are case-insensitive; the time column may be called `time`, `timestamp`, `date`,
`datetime` or `open_time`, and holds ISO-8601 text or Unix epoch seconds / milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bot.contracts import BadInput, NotFound

TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "open_time")
SUFFIXES = (".csv", ".parquet", ".pq")
EPOCH_MS_ABOVE = 1e11  # larger epoch numbers are milliseconds (1e11 s is the year 5138)


def symbol_files(folder: Path, symbol: str) -> list[Path]:
    """Files of one symbol in a folder: `{SYMBOL}.csv` or `{SYMBOL}_*.csv` (and Parquet), sorted."""
    wanted = symbol.upper()
    files = [
        path
        for path in folder.iterdir()
        if path.suffix.lower() in SUFFIXES
        and (path.stem.upper() == wanted or path.stem.upper().startswith(f"{wanted}_"))
    ]
    if not files:
        available = sorted({p.stem.split("_")[0].upper() for p in folder.iterdir() if _is_bars(p)})
        raise NotFound(
            f"no bar files for {wanted} in {folder} (expected {wanted}_*.csv or "
            f"{wanted}_*.parquet); symbols there: {', '.join(available) or 'none'}"
        )
    return sorted(files)


def _is_bars(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


def read_bar_file(path: Path) -> pd.DataFrame:
    """One file as a raw frame with a `time` column (UTC) and lower-case bar columns."""
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadInput(f"cannot read bars from {path}: {exc}") from exc
    frame.columns = [str(name).strip().lower() for name in frame.columns]
    return _with_time(frame, path)


def _with_time(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names="time")
    column = next((name for name in TIME_COLUMNS if name in frame.columns), None)
    if column is None:
        raise BadInput(
            f"{path} has no time column; name one of {', '.join(TIME_COLUMNS)} "
            f"(found {', '.join(map(str, frame.columns))})"
        )
    frame = frame.rename(columns={column: "time"})
    frame["time"] = parse_times(frame["time"])
    return frame


def parse_times(values: pd.Series) -> pd.Series:
    """ISO text or epoch numbers to UTC timestamps; unparseable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        if numbers.abs().max() > EPOCH_MS_ABOVE:
            return pd.to_datetime(numbers, unit="ms", utc=True)
        return pd.to_datetime(numbers, unit="s", utc=True)
    parsed: pd.Series = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return parsed


def read_path(path: Path, symbol: str) -> pd.DataFrame:
    """All rows for `symbol` from a file or a folder, concatenated in file order."""
    if not path.exists():
        raise NotFound(f"bar data path {path} does not exist; check ITFF_DATA_SOURCE")
    files = symbol_files(path, symbol) if path.is_dir() else [path]
    return pd.concat([read_bar_file(file) for file in files], ignore_index=True)
