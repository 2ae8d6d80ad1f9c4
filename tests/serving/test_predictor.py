"""The predictor: verified champions, input validation, actions, the OOD rule, reload, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bot.artifacts import ArtifactRegistry, Signer, make_manifest, meta_of, pickle_pipeline
from bot.artifacts.pointers import make_pointer
from bot.contracts import BadInput, IntegrityError, NotFound, Settings
from bot.core import (
    FEATURE_NAMES,
    WARMUP_BARS,
    ModelBundle,
    Thresholds,
    build_features,
    ood_distances,
    ood_summary,
    to_windows,
)
from bot.serving import Predictor
from tests.support.bundles import FEATURES, make_bundle, training_inputs
from tests.support.keys import SIGNING_KEY

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "SPX_1d.csv"
DIRECTION = "SPX-direction-logreg"
RETURN = "SPX-return-ridge"


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(tmp_path / "artifacts", signing_key=SIGNING_KEY)


def serve(registry: ArtifactRegistry, bundle: ModelBundle) -> ModelBundle:
    registry.publish(bundle)
    registry.promote(bundle.key, bundle.version)
    return bundle


def spx_bars(n: int | None = None) -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    bars = frame.set_index("time").astype("float64")
    return bars if n is None else bars.iloc[-n:]


def real_bundle(version: str = "20260101T000000Z-0001", lookback: int = 3) -> ModelBundle:
    """A direction model trained on real SPX features, the way training builds its inputs."""
    bars = spx_bars(1500)
    features = build_features(bars).to_numpy()[WARMUP_BARS:]
    X = to_windows(features, lookback)[:-1]
    close = bars["close"].to_numpy()[WARMUP_BARS + lookback - 1 :]
    y = (np.diff(close) > 0).astype(int)
    pipeline = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    return ModelBundle(
        symbol="SPX",
        target="direction",
        model_type="logreg",
        version=version,
        pipeline=pipeline,
        feature_names=FEATURE_NAMES,
        lookback=lookback,
        horizon=1,
        interval="1D",
        thresholds=Thresholds(0.52, 0.48),
        train_start=bars.index[0].to_pydatetime(),
        train_end=bars.index[-1].to_pydatetime(),
        ood=ood_summary(pipeline[0].transform(X)),
        fit_windows=X,
    )


def test_direction_predictions_use_the_saved_scaler_and_thresholds(
    registry: ArtifactRegistry,
) -> None:
    bundle = serve(registry, make_bundle(thresholds=Thresholds(0.6, 0.4)))
    X = training_inputs(2, 3, seed=5, n=64)
    predictions = Predictor(registry).predict_windows(DIRECTION, X)
    up = bundle.pipeline.predict_proba(X)[:, 1]
    assert [p.probability for p in predictions] == pytest.approx(up.tolist(), abs=1e-12)
    assert [p.prediction for p in predictions] == bundle.pipeline.predict(X).astype(float).tolist()
    expected = ["buy" if q >= 0.6 else "sell" if q <= 0.4 else "hold" for q in up]
    assert [p.action for p in predictions] == expected
    assert {"buy", "sell", "hold"} <= set(expected)
    first = predictions[0]
    assert (first.model_key, first.model_version, first.target) == (
        DIRECTION,
        bundle.version,
        "direction",
    )
    assert not any(p.ood for p in predictions)


def test_return_predictions_carry_no_probability(registry: ArtifactRegistry) -> None:
    bundle = serve(registry, make_bundle(target="return"))
    X = training_inputs(2, 3, seed=6, n=16)
    predictions = Predictor(registry).predict_windows(RETURN, X)
    assert [p.prediction for p in predictions] == pytest.approx(bundle.pipeline.predict(X).tolist())
    assert {p.probability for p in predictions} == {None}


def test_three_dimensional_windows_equal_flat_ones(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    X = training_inputs(2, 3, seed=8, n=5)
    predictor = Predictor(registry)
    flat = predictor.predict_windows(DIRECTION, X)
    assert predictor.predict_windows(DIRECTION, X.reshape(5, 2, 3)) == flat


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4, 9), r"needs 6 values per window \(lookback 2 x 3 features\), got 9 \(3 bars\)"),
        ((4, 3), r"got 3 \(1 bars\); send exactly 2 bars"),
        ((4, 7), r"got 7 \(a partial bar\)"),
        ((4, 3, 3), r"needs windows of 2 bars x 3 features, got 3 bars"),
        ((6,), r"must be 2-D"),
        ((0, 6), r"no input rows"),
    ],
)
def test_a_wrong_lookback_or_shape_is_refused(
    registry: ArtifactRegistry, shape: tuple[int, ...], message: str
) -> None:
    serve(registry, make_bundle())
    with pytest.raises(BadInput, match=message):
        Predictor(registry).predict_windows(DIRECTION, np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_inputs_are_refused(registry: ArtifactRegistry, bad: float) -> None:
    serve(registry, make_bundle())
    X = training_inputs(2, 3, seed=9, n=4)
    X[2, 4] = bad
    with pytest.raises(BadInput, match=rf"input row 2, 'ret_5@t' is {bad}; inputs must be finite"):
        Predictor(registry).predict_windows(DIRECTION, X)


def test_non_numeric_inputs_are_refused(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    with pytest.raises(BadInput, match="numbers only"):
        Predictor(registry).predict_windows(DIRECTION, [["a"] * 6])


def test_named_rows_in_order_predict_each_complete_window(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    per_bar = training_inputs(1, 3, seed=10, n=5)
    rows = pd.DataFrame(per_bar, columns=list(FEATURES))
    predictor = Predictor(registry)
    by_rows = predictor.predict_rows(DIRECTION, rows)
    assert by_rows == predictor.predict_windows(DIRECTION, to_windows(per_bar, 2))
    assert len(by_rows) == 4
    flat = pd.DataFrame(to_windows(per_bar, 2), columns=list(make_bundle().input_names))
    assert predictor.predict_rows(DIRECTION, flat) == by_rows


def test_a_wrong_column_order_is_detected(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    rows = pd.DataFrame(training_inputs(1, 3, seed=11, n=3), columns=["ret_5", "ret_1", "rsi_14"])
    expected = (
        r"wrong order for SPX-direction-logreg: "
        r"expected \['ret_1', 'ret_5', 'rsi_14'\], got \['ret_5', 'ret_1', 'rsi_14'\]"
    )
    with pytest.raises(BadInput, match=expected):
        Predictor(registry).predict_rows(DIRECTION, rows)
    names = list(make_bundle().input_names)
    flat = pd.DataFrame(np.zeros((1, 6)), columns=[*names[3:], *names[:3]])
    with pytest.raises(BadInput, match="wrong order"):
        Predictor(registry).predict_rows(DIRECTION, flat)


def test_missing_or_unknown_columns_and_short_sequences_are_refused(
    registry: ArtifactRegistry,
) -> None:
    serve(registry, make_bundle())
    predictor = Predictor(registry)
    rows = pd.DataFrame(np.zeros((3, 3)), columns=["ret_1", "ret_5", "vol_5"])
    with pytest.raises(BadInput, match=r"missing \['rsi_14'\], unexpected \['vol_5'\]"):
        predictor.predict_rows(DIRECTION, rows)
    one_row = pd.DataFrame(np.zeros((1, 3)), columns=list(FEATURES))
    with pytest.raises(BadInput, match=r"needs 2 consecutive feature rows \(its lookback\), got 1"):
        predictor.predict_rows(DIRECTION, one_row)
    with pytest.raises(BadInput, match="DataFrame"):
        predictor.predict_rows(DIRECTION, np.zeros((2, 3)))  # type: ignore[arg-type]


def test_inputs_far_from_training_are_ood_and_held(registry: ArtifactRegistry) -> None:
    bundle = serve(registry, make_bundle(thresholds=Thresholds(0.0, -1.0)))  # always "buy"
    X = np.vstack([training_inputs(2, 3, seed=12, n=1), np.full((1, 6), 40.0)])
    normal, extreme = Predictor(registry).predict_windows(DIRECTION, X)
    assert (normal.ood, normal.action) == (False, "buy")
    assert (extreme.ood, extreme.action) == (True, "hold")
    assert extreme.ood_distance > bundle.ood.threshold > normal.ood_distance
    scaled = bundle.pipeline[0].transform(X)
    diff = scaled - bundle.ood.mean
    assert extreme.ood_distance == pytest.approx(diff[1] @ bundle.ood.precision @ diff[1])


def test_ood_summary_flags_about_the_chosen_share_of_training_inputs() -> None:
    scaled = np.random.default_rng(0).normal(size=(4000, 6))
    summary = ood_summary(scaled, quantile=0.99)
    flagged = ood_distances(scaled, summary.mean, summary.precision) > summary.threshold
    assert flagged.mean() == pytest.approx(0.01, abs=0.002)


def test_unknown_symbol_or_key_is_not_found(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    predictor = Predictor(registry)
    with pytest.raises(NotFound, match="no champion model for NDX"):
        predictor.predict_bars("ndx", spx_bars(200))
    with pytest.raises(NotFound, match="no champion for NDX-direction-logreg"):
        predictor.predict_windows("NDX-direction-logreg", np.zeros((1, 6)))


def test_champion_keys_handle_dashes_in_symbols(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle(symbol="BRK-B"))
    serve(registry, make_bundle(symbol="BRK"))
    registry.publish(make_bundle(symbol="BRK", target="return"))  # no champion yet
    predictor = Predictor(registry)
    assert predictor.champion_keys("brk-b") == ["BRK-B-direction-logreg"]
    assert predictor.champion_keys("BRK") == ["BRK-direction-logreg"]


def test_a_pipeline_without_its_scaler_is_refused_at_load(registry: ArtifactRegistry) -> None:
    bundle = make_bundle()
    no_scaler = Pipeline([("model", LogisticRegression())]).fit(
        training_inputs(2, 3, n=50), np.arange(50) % 2
    )
    _write_unchecked(registry, bundle, no_scaler)
    with pytest.raises(
        IntegrityError, match="no scaler: its first step 'model' is LogisticRegression"
    ):
        Predictor(registry).predict_windows(DIRECTION, np.zeros((1, 6)))


@pytest.mark.parametrize(
    ("runtime", "name"), [("sklearn", "model.joblib"), ("compiled", "model.linear.json")]
)
def test_a_tampered_artifact_is_refused(
    registry: ArtifactRegistry, runtime: str, name: str
) -> None:
    bundle = serve(registry, make_bundle())
    model = registry.root / DIRECTION / bundle.version / name
    data = bytearray(model.read_bytes())
    data[-30] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"{name}: SHA-256 mismatch"):
        Predictor(registry, runtime).predict_windows(DIRECTION, np.zeros((1, 6)))  # type: ignore[arg-type]


def test_reload_swaps_in_the_new_champion_and_keeps_the_old_on_failure(
    registry: ArtifactRegistry,
) -> None:
    v1 = serve(registry, make_bundle(version="20260101T000000Z-0001", seed=1))
    predictor = Predictor(registry)
    X = training_inputs(2, 3, seed=13, n=3)
    before = predictor.predict_windows(DIRECTION, X)
    v2 = serve(registry, make_bundle(version="20260102T000000Z-0001", seed=2))
    assert predictor.predict_windows(DIRECTION, X) == before  # cached until reloaded
    assert predictor.refresh() == {DIRECTION: v2.version}
    assert predictor.served_versions() == {DIRECTION: v2.version}
    v3 = make_bundle(version="20260103T000000Z-0001", seed=3)
    serve(registry, v3)
    (registry.root / DIRECTION / v3.version / "meta.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"meta\.json"):
        predictor.reload(DIRECTION)
    assert predictor.served_versions() == {DIRECTION: v2.version}
    assert predictor.predict_windows(DIRECTION, X)[0].model_version == v2.version
    assert v1.version != v2.version


def test_predictions_from_many_threads_during_reloads(registry: ArtifactRegistry) -> None:
    versions = ["20260101T000000Z-0001", "20260102T000000Z-0001"]
    for seed, version in enumerate(versions):
        serve(registry, make_bundle(version=version, seed=seed))
    X = training_inputs(2, 3, seed=14, n=32)
    expected = {
        v: registry.load(DIRECTION, v).pipeline.predict_proba(X)[:, 1].tolist() for v in versions
    }
    predictor = Predictor(registry)
    stop = threading.Event()

    def switch_champions() -> None:
        turn = 0
        while not stop.is_set():
            registry.promote(DIRECTION, versions[turn % 2])
            predictor.reload(DIRECTION)
            turn += 1

    switcher = threading.Thread(target=switch_champions)
    switcher.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: predictor.predict_windows(DIRECTION, X), range(60)))
    stop.set()
    switcher.join()
    for result in results:
        assert len({p.model_version for p in result}) == 1
        assert [p.probability for p in result] == pytest.approx(
            expected[result[0].model_version], abs=1e-12
        )


def test_predict_bars_builds_features_like_training(registry: ArtifactRegistry) -> None:
    bundle = serve(registry, real_bundle())
    bars = spx_bars(400)
    [prediction] = Predictor(registry).predict_bars("SPX", bars)
    windows = to_windows(build_features(bars).to_numpy()[WARMUP_BARS:], bundle.lookback)
    direct = bundle.pipeline.predict_proba(windows[-1:])[0, 1]
    assert prediction.probability == pytest.approx(direct, abs=1e-12)
    assert prediction.model_version == bundle.version
    assert not prediction.ood  # a recent SPX bar lies inside the training distribution


def test_predict_bars_needs_the_warm_up_and_the_lookback(registry: ArtifactRegistry) -> None:
    serve(registry, real_bundle())
    needed = WARMUP_BARS + 3
    with pytest.raises(BadInput, match=rf"too few .* needs at least {needed}"):
        Predictor(registry).predict_bars("SPX", spx_bars(needed - 1))
    assert len(Predictor(registry).predict_bars("SPX", spx_bars(needed))) == 1


def _write_unchecked(registry: ArtifactRegistry, bundle: ModelBundle, pipeline: Pipeline) -> None:
    """A correctly signed version whose pipeline skipped the publish-time checks."""
    folder = registry.root / bundle.key / bundle.version
    folder.mkdir(parents=True)
    files = {"meta.json": meta_of(bundle), "model.joblib": pickle_pipeline(pipeline)}
    manifest, _ = make_manifest(bundle.key, bundle.version, files, Signer(SIGNING_KEY))
    for name, data in {**files, "manifest.json": manifest}.items():
        (folder / name).write_bytes(data)
    pointer = make_pointer(bundle.key, bundle.version, 1, "promoted", Signer(SIGNING_KEY))
    (folder.parent / "CHAMPION").write_bytes(pointer.raw)


def test_bundle_dates_survive(registry: ArtifactRegistry) -> None:
    serve(registry, make_bundle())
    assert Predictor(registry).bundle(DIRECTION).train_end == datetime(2024, 12, 31, tzinfo=UTC)


def test_trained_models_round_trip_and_itff_predict_prints_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from bot.cli import artifacts as cli
    from bot.core import train_model

    monkeypatch.setenv("ITFF_ARTIFACT_DIR", str(settings.artifact_dir))
    registry = ArtifactRegistry(settings.artifact_dir)
    bars = spx_bars(1200)
    for target, model_type in (("direction", "logreg"), ("return", "ridge")):
        bundle = train_model(bars, symbol="SPX", target=target, model_type=model_type).bundle
        serve(registry, bundle)
    csv = settings.artifact_dir.parent / "spx.csv"
    recent = bars.iloc[-300:].reset_index()
    recent["time"] = recent["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    recent.to_csv(csv, index=False)
    expected = Predictor(registry).predict_bars("SPX", bars.iloc[-300:])
    assert [p.model_key for p in expected] == [DIRECTION, RETURN]
    app = typer.Typer()
    cli.register(app)
    result = CliRunner().invoke(app, ["predict", "--csv", str(csv), "--symbol", "spx", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert [p["model_key"] for p in printed] == [DIRECTION, RETURN]
    assert printed[0]["probability"] == pytest.approx(expected[0].probability, abs=1e-12)
    assert printed[1]["prediction"] == pytest.approx(expected[1].prediction, abs=1e-15)
    assert {p["bar_time"] for p in printed} == {bars.index[-1].isoformat()}
    table = CliRunner().invoke(app, ["predict", "--csv", str(csv), "--symbol", "SPX"])
    assert DIRECTION in table.output
    assert expected[0].action in table.output
