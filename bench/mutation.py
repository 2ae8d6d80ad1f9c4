"""`make mutation`: mutation scores of the forecasting core and the receiver's auth and dedupe.

mutmut (configured in pyproject.toml `[tool.mutmut]`) copies the code to `mutants/`, mutates the
modules below, and runs, for each mutant, the fast tests that cover the mutated function. A mutant
is killed when a test fails; a survivor is a change of the code that no test notices. This prints
the score per module (killed / mutants) and lists the survivors (`mutmut show NAME` shows one).
Figures, not a pass/fail test: it is CPU heavy (minutes per module on two cores), so it is not
part of `make test`; it runs niced.

    .venv/bin/python bench/mutation.py [--modules promotion,auth] [--max-children 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")
MODULES = {
    "features": "bot.core.features",
    "targets": "bot.core.targets",
    "walkforward": "bot.core.walkforward",
    "backtesting": "bot.core.backtesting",
    "scores": "bot.core.scores",
    "evaluation": "bot.core.evaluation",
    "promotion": "bot.core.promotion",
    "drift_rule": "bot.core.drift_rule",
    "auth": "producers.auth",
    "dedupe": "producers.dedupe",
}
RESULT = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*$")


def run(module: str, max_children: int) -> float:
    """Run the mutants of one module (niced); the seconds it took."""
    started = time.monotonic()
    command = ["nice", "-n", "10", str(MUTMUT), "run", "--max-children", str(max_children)]
    subprocess.run([*command, f"{module}.*"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def results() -> dict[str, dict[str, str]]:
    """Per module: mutant name -> status (killed, survived, timeout, no tests, ...)."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    by_module: dict[str, dict[str, str]] = defaultdict(dict)
    for line in out.splitlines():
        if found := RESULT.match(line):
            name = found["name"]
            module = next((m for m in MODULES.values() if name.startswith(f"{m}.")), None)
            if module is not None:
                by_module[module][name] = found["status"]
    return by_module


def report(module: str, statuses: dict[str, str], seconds: float | None) -> None:
    counts = Counter(statuses.values())
    checked = sum(n for status, n in counts.items() if status != "not checked")
    killed = counts["killed"] + counts["timeout"]  # a mutant that hangs the tests is caught
    score = 100 * killed / checked if checked else 0.0
    took = f"  {seconds:.0f} s" if seconds is not None else ""
    detail = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    print(f"{module:<22} {score:5.1f} % killed  ({killed}/{checked}; {detail}){took}")
    for name, status in sorted(statuses.items()):
        if status not in {"killed", "timeout", "not checked"}:
            print(f"    {status:<9} {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES), help="short names, comma separated")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    args = parser.parse_args()
    names = [name for name in args.modules.split(",") if name]
    if unknown := [name for name in names if name not in MODULES]:
        parser.error(f"unknown module {', '.join(unknown)}; choose among {', '.join(MODULES)}")
    chosen = [MODULES[name] for name in names]
    seconds = {m: None if args.report_only else run(m, args.max_children) for m in chosen}
    statuses = results()
    for module in chosen:
        report(module, statuses.get(module, {}), seconds[module])


if __name__ == "__main__":
    main()
