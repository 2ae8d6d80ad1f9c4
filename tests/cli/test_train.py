"""`itff train` and `itff evaluate` end to end on a small slice of the sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.artifacts import ArtifactRegistry
from tests.conftest import SAMPLE_DIR
from tests.support.env import child_env

FAST = ["--min-train", "250", "--refit-every", "200"]


@pytest.fixture
def env(settings, tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    for symbol in ("SPX", "NDX"):
        lines = (SAMPLE_DIR / f"{symbol}_1d.csv").read_text().splitlines()
        (data / f"{symbol}_1d.csv").write_text("\n".join([lines[0], *lines[-650:]]) + "\n")
    return child_env(
        ITFF_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        ITFF_DATA_SOURCE=f"csv:{data}",
        ITFF_SYMBOLS="SPX",
        ITFF_LOG_JSON="false",
        OMP_NUM_THREADS="1",
    )


def itff(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "from bot.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False,
        timeout=240,
    )  # fmt: skip


@pytest.mark.kafka
def test_train_publishes_promotes_new_lines_and_keeps_champions(env, kafka_settings, tmp_path):
    """Promotions go through the champion switch: recorded, announced on the models topic."""
    env = env | {
        "ITFF_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "ITFF_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "ITFF_DATABASE_URL": kafka_settings.database_url,
    }
    registry = ArtifactRegistry(tmp_path / "artifacts")
    first = itff(env, "train", "--targets", "direction,return", "--model-types", "logreg,ridge",
                 "--jobs", "1", *FAST)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "skipped SPX-return-logreg: logreg cannot predict return" in first.stderr
    keys = {"SPX-direction-logreg", "SPX-direction-ridge", "SPX-return-ridge"}
    assert set(registry.champions()) == keys
    for key in keys:
        assert key in first.stdout
    assert all(result.ok for result in registry.verify())

    champion = registry.champion("SPX-direction-ridge")
    again = itff(env, "train", "--targets", "direction", "--model-types", "ridge", *FAST)
    assert again.returncode == 0, again.stderr
    assert registry.champion("SPX-direction-ridge") == champion  # no --promote: kept
    assert len(registry.versions("SPX-direction-ridge")) == 2

    promoted = itff(env, "train", "--targets", "direction", "--model-types", "ridge",
                    "--promote", *FAST)  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    newest = max(v.version for v in registry.versions("SPX-direction-ridge"))
    assert registry.champion("SPX-direction-ridge") == newest != champion


def test_evaluate_json_in_parallel_with_baselines(env):
    done = itff(env, "evaluate", "--json", "--symbols", "SPX,NDX", "--targets", "direction",
                "--model-types", "ridge,hgb", "--jobs", "2", *FAST)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout)
    assert sorted(r["key"] for r in reports) == [
        "NDX-direction-hgb",
        "NDX-direction-ridge",
        "SPX-direction-hgb",
        "SPX-direction-ridge",
    ]
    for report in reports:
        assert set(report["baselines"]) == {"buy_and_hold", "persistence", "random"}
        assert 0 <= report["metrics"]["accuracy"] <= 1
        assert report["test_start"] < report["test_end"]


def test_evaluate_table_shows_models_beside_baselines(env):
    done = itff(env, "evaluate", "--targets", "return", "--model-types", "ridge", "--jobs", "1",
                *FAST)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SPX-return-ridge" in done.stdout
    assert "baseline buy_and_hold" in done.stdout
    assert "baseline persistence" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-types", "xgb"], "unknown model type 'xgb'"),
        (["--symbols", "DAX"], "no bar files for DAX"),
        (["--min-train", "5000"], "too few for a walk-forward with min_train=5000"),
    ],
)
def test_errors_are_one_clear_line(env, args, message):
    done = itff(env, "evaluate", "--jobs", "1", *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
