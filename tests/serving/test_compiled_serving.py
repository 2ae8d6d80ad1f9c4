"""Serving never unpickles: the consumer's model loading and predictions, run in a fresh process
under an audit hook that records every class an unpickler looks up (`pickle.find_class`, raised by
pickle's and joblib's unpicklers alike). model.joblib is still hashed (a version with any altered
file is refused) but never unpickled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.contracts import Settings
from tests.support.consumer import publish_champions
from tests.support.env import child_env

LINES = (("direction", "logreg"), ("direction", "ridge"), ("return", "ridge"),
         ("direction", "hgb"), ("return", "rf"))  # fmt: skip

SERVE = textwrap.dedent(
    """
    import json, sys

    seen = []

    def audit(event, args):
        if event == "pickle.find_class":
            seen.append(f"unpickled {args[0]}.{args[1]}")

    sys.addaudithook(audit)

    import numpy as np
    from bot.contracts import load_settings
    from consumers.served_models import PredictorModels

    models = PredictorModels.from_settings(load_settings())
    served = {}
    for spec in models.specs("SPX"):
        windows = np.full((3, spec.lookback * len(spec.feature_names)), 0.1)
        served[spec.key] = [p.action for p in models.predict_windows(spec.key, windows)]
    runtimes = {key: models.predictor.runtime_of(key) for key in served}
    print(json.dumps({"served": served, "runtimes": runtimes, "seen": seen}))
    """
)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("artifacts")
    publish_champions(Settings(artifact_dir=folder), "SPX", lines=LINES)
    return folder


def serve(artifacts: Path, runtime: str) -> dict[str, dict[str, object]]:
    env = child_env(
        ITFF_ENV="test", ITFF_ARTIFACT_DIR=str(artifacts), ITFF_SERVING_RUNTIME=runtime,
        ITFF_LOG_LEVEL="ERROR",
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SERVE], env=env, capture_output=True, text=True, timeout=120,
        check=False, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_compiled_runtime_serves_every_champion_without_unpickling(artifacts: Path) -> None:
    result = serve(artifacts, "compiled")
    assert len(result["served"]) == len(LINES)
    assert set(result["runtimes"].values()) == {"compiled"}
    assert result["seen"] == []


def test_the_audit_sees_unpickling_on_the_sklearn_runtime(artifacts: Path) -> None:
    """The same probe on the scikit-learn runtime: it does see the joblib loads (the test's teeth),
    and both runtimes decide the same actions."""
    result = serve(artifacts, "sklearn")
    assert any(item.startswith("unpickled sklearn.") for item in result["seen"])
    assert result["served"] == serve(artifacts, "compiled")["served"]
