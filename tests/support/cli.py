"""The real `itff` command line in a child process, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_itff(
    env: dict[str, str], *args: str, timeout: float = 120, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`itff ARGS` through `bot.cli.main` (its error handling included) with this checkout's code
    first on the path, `answer` on its standard input; never raises on a non-zero exit."""
    paths = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        env=env | {"PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        input=answer,
        text=True,
        check=False,
        timeout=timeout,
    )
