"""`itff artifacts list | verify | prune | fetch | push | keygen | resign` and `itff predict`
(`itff rollback` switches champions: bot/cli/pipeline.py)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli import s3

if TYPE_CHECKING:
    from bot.artifacts import ArtifactRegistry, VersionInfo
    from bot.contracts import Settings
    from bot.serving import Prediction

LIST_METRICS = ("accuracy", "roc_auc", "rmse", "sharpe")
KeyOption = Annotated[str | None, typer.Option("--key", help="only this model key")]
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _registry() -> tuple[Settings, ArtifactRegistry]:
    from bot.artifacts import registry_from_settings
    from bot.contracts import load_settings

    settings = load_settings()
    return settings, registry_from_settings(settings)


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _metrics_of(registry: ArtifactRegistry, info: VersionInfo) -> dict[str, Any]:
    from bot.contracts import IntegrityError

    try:
        metrics: dict[str, Any] = registry.meta(info.key, info.version).get("metrics", {})
    except IntegrityError:
        return {}
    found = {name: float(metrics[name]) for name in LIST_METRICS if metrics.get(name) is not None}
    return {name: value for name, value in found.items() if math.isfinite(value)}


def _format_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
        for name, value in metrics.items()
    )


def list_versions(key: KeyOption = None, as_json: JsonFlag = False) -> None:
    """Every version of every key: status, digest, creation time and key metrics."""
    settings, registry = _registry()
    names = [key] if key else registry.keys()
    infos = [info for name in names for info in registry.versions(name)]
    records: list[dict[str, Any]] = [
        {
            "key": info.key,
            "version": info.version,
            "status": info.status,
            "sha256": info.sha256,
            "created_at": info.created_at,
            "signed": info.signed,
            "metrics": _metrics_of(registry, info),
        }
        for info in infos
    ]
    if as_json:
        _echo_json(records)
        return
    if not records:
        typer.echo(f"no artifacts under {settings.artifact_dir}")
        return
    rows = [
        [
            info.key, info.version, info.status, (info.sha256 or "unreadable")[:12],
            (info.created_at or "")[:19], _format_metrics(record["metrics"]),
        ]
        for info, record in zip(infos, records, strict=True)
    ]  # fmt: skip
    columns = ["key", "version", "status", "sha256", "created (UTC)", "metrics"]
    _table(f"artifacts in {settings.artifact_dir}", columns, rows)


def verify(key: KeyOption = None, as_json: JsonFlag = False) -> None:
    """Re-hash every published file against its manifest; exit 1 naming any file that fails."""
    settings, registry = _registry()
    results = registry.verify(key)
    failed = [r for r in results if not r.ok]
    if as_json:
        _echo_json([_as_dict(result) for result in results])
    else:
        for result in results:
            if result.ok:
                typer.echo(f"ok      {result.key}/{result.version}")
            else:
                typer.secho(
                    f"FAILED  {result.key}/{result.version} {result.file}: {result.problem}",
                    fg="red",
                )
        signing = (
            f"Ed25519 signatures, trusted keys {', '.join(registry.key_ids) or 'none'}"
            if registry.signed
            else "checksums only (no key configured)"
        )
        typer.echo(
            f"{len(results) - len(failed)}/{len(results)} versions verified under "
            f"{settings.artifact_dir} ({signing})"
        )
    if failed:
        raise typer.Exit(1)


def _as_dict(result: Any) -> dict[str, Any]:
    return {name: getattr(result, name) for name in ("key", "version", "ok", "file", "problem")}


def keygen(as_json: JsonFlag = False) -> None:
    """Print a new Ed25519 key pair: the private key for the scheduler only, the public key for
    every service that loads models (consumers, the receiver's /predict)."""
    from bot.artifacts import generate_keypair

    private, public = generate_keypair()
    if as_json:
        _echo_json({"ITFF_ARTIFACT_SIGNING_KEY": private, "ITFF_ARTIFACT_PUBLIC_KEYS": public})
        return
    typer.echo(f"ITFF_ARTIFACT_SIGNING_KEY={private}")
    typer.echo(f"ITFF_ARTIFACT_PUBLIC_KEYS={public}")
    typer.echo(
        "# the private key goes to the scheduler (and whoever runs `itff rollback`) only; to "
        "rotate, list the old and the new public key (comma-separated), re-sign with "
        "`itff artifacts resign`, then drop the old one",
        err=True,
    )


def resign() -> None:
    """Re-sign every version that verifies (HMAC-era ones with ITFF_ARTIFACT_LEGACY_HMAC_KEY)
    with ITFF_ARTIFACT_SIGNING_KEY; then push and drop the legacy key."""
    settings, registry = _registry()
    changed = registry.resign()
    for name in changed:
        typer.echo(f"re-signed {name}")
    typer.echo(f"{len(changed)} versions re-signed under {settings.artifact_dir}")


def prune(
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=1, help="versions kept per key (ITFF_ARTIFACT_KEEP_VERSIONS)"),
    ] = None,
) -> None:
    """Delete old versions, never the champion nor the rollback target."""
    settings, registry = _registry()
    removed = registry.prune(keep or settings.artifact_keep_versions)
    for name in removed:
        typer.echo(f"removed {name}")
    typer.echo(f"{len(removed)} versions removed")


def fetch(
    key: Annotated[list[str] | None, typer.Option("--key", help="model key (repeatable)")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="default ITFF_ARTIFACT_BASE_URL")
    ] = None,
    urls_file: Annotated[
        Path | None,
        typer.Option("--urls-file", help="pre-signed URLs from `itff artifacts push --urls-file`"),
    ] = None,
) -> None:
    """Install the remote champions (verified) from ITFF_ARTIFACT_BASE_URL or pre-signed URLs."""
    from bot.artifacts import PresignedUrls, fetch_many
    from bot.contracts import BadInput, ConfigError, NotFound

    settings, registry = _registry()
    if urls_file is not None:
        try:
            document = json.loads(urls_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read the URL file {urls_file}: {exc}") from exc
        results = asyncio.run(fetch_many(registry, PresignedUrls(document), key or None))
        _report(results)
        return
    base = base_url or settings.artifact_base_url
    if not base:
        raise ConfigError("set ITFF_ARTIFACT_BASE_URL (or pass --base-url) to fetch artifacts")
    try:
        results = asyncio.run(fetch_many(registry, base, key or None))
    except NotFound:
        if key:
            raise
        results = asyncio.run(fetch_many(registry, base, _configured_keys(settings)))
    _report(results)


def _report(results: dict[str, Any]) -> None:
    from bot.artifacts import describe

    for name, result in results.items():
        typer.echo(f"{name}: {describe(result)}")
    if any(isinstance(result, Exception) for result in results.values()):
        raise typer.Exit(1)


def _configured_keys(settings: Settings) -> list[str]:
    from bot.serving import configured_keys

    return configured_keys(settings)


def predict(
    csv: Annotated[Path, typer.Option("--csv", help="bars: time, open, high, low, close, volume")],
    symbol: Annotated[str, typer.Option("--symbol", help="the symbol whose champions predict")],
    as_json: JsonFlag = False,
) -> None:
    """Each champion's prediction for the last bar of a CSV of bars."""
    from bot.data import load_bars
    from bot.serving import Predictor

    settings, registry = _registry()
    bars = load_bars(f"csv:{csv}", symbol.upper())
    predictions = Predictor(registry, settings.serving_runtime).predict_bars(symbol, bars)
    bar_time = bars.index[-1].isoformat()
    if as_json:
        head = {"symbol": symbol.upper(), "bar_time": bar_time}
        _echo_json([head | _fields(prediction) for prediction in predictions])
        return
    rows = [_row(p) for p in predictions]
    columns = ["model", "version", "prediction", "P(up)", "action", "ood (distance)"]
    _table(f"{symbol.upper()} at {bar_time}", columns, rows)


def _fields(prediction: Prediction) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(prediction)


def _row(p: Prediction) -> list[str]:
    value = f"{p.prediction:+.6f}" if p.target == "return" else ("up" if p.prediction else "down")
    probability = "" if p.probability is None else f"{p.probability:.3f}"
    return [
        p.model_key, p.model_version, value, probability, p.action,
        f"{'yes' if p.ood else 'no'} ({p.ood_distance:.1f})",
    ]  # fmt: skip


def register(app: typer.Typer) -> None:
    artifacts = typer.Typer(
        help="Model artifacts: list, verify, prune, fetch, push, keygen, resign.",
        no_args_is_help=True,
    )
    artifacts.command("list")(list_versions)
    artifacts.command("verify")(verify)
    artifacts.command("prune")(prune)
    artifacts.command("fetch")(fetch)
    artifacts.command("keygen")(keygen)
    artifacts.command("resign")(resign)
    # push lives in bot.cli.s3 (boto3 loads only when it runs); the group owns it, so that every
    # CLI that has `artifacts` has `artifacts push`, whatever the order of registration
    artifacts.command("push", help=s3.PUSH_HELP)(s3.push)
    app.add_typer(artifacts, name="artifacts")
    app.command("predict")(predict)
