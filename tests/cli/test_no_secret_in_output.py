"""No secret in any output: the commands an operator and a deploy run, with a database URL that
holds a known password and known secrets in the environment, never print them (standard output,
error lines, JSON log lines), and the log chain masks a URL's password wherever it appears."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, run_itff
from tests.support.env import child_env
from tests.support.keys import PUBLIC_KEY, SIGNING_KEY

PASSWORD = "Db-" + secrets.token_urlsafe(24)
DATABASE_URL = f"postgresql+asyncpg://itff:{PASSWORD}@127.0.0.1:1/itff"  # nothing listens there
SECRETS = {
    "ITFF_TRADINGVIEW_PASSPHRASE": secrets.token_urlsafe(32),
    "ITFF_API_TOKEN": secrets.token_urlsafe(32),
    "ITFF_DASH_PASSWORD": secrets.token_urlsafe(32),
    "ITFF_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
}
COMMANDS = [
    ("db", "upgrade"),
    ("db", "current"),
    ("db", "downgrade", "base"),
    ("pipeline", "runs"),
    ("outbox", "list"),
    ("artifacts", "list"),
    ("artifacts", "verify"),
    ("webhook", "--port", "1"),
]


def leaked(text: str) -> list[str]:
    known = [PASSWORD, *SECRETS.values(), SIGNING_KEY.removeprefix("ed25519sk_")]
    return [secret[:6] + "..." for secret in known if secret in text]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_command_prints_the_database_password_or_a_secret(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = child_env(
        ITFF_DATABASE_URL=DATABASE_URL,
        ITFF_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        ITFF_ARTIFACT_PUBLIC_KEYS=PUBLIC_KEY,
        ITFF_ARTIFACT_SIGNING_KEY=SIGNING_KEY,
        ITFF_KAFKA_BOOTSTRAP="127.0.0.1:1",
        ITFF_LOG_LEVEL="DEBUG",
        **SECRETS,
    )
    result = run_itff(env, *command, timeout=90)
    output = result.stdout + result.stderr
    assert output.strip(), "the command said nothing: the check would be empty"
    assert not leaked(output), output


def test_log_lines_mask_a_url_password_in_messages_fields_and_tracebacks() -> None:
    script = f"""
import logging
from bot.runtime import configure_logging, get_logger
configure_logging(level="INFO", json=True, service="test")
log = get_logger("test")
url = {DATABASE_URL!r}
log.error("cannot connect to " + url, url=url)
try:
    raise ConnectionError("connection to " + url + " refused")
except ConnectionError:
    log.exception("database down")
    logging.getLogger("alembic").exception("migration against %s failed", url)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=child_env() | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert not leaked(result.stderr), result.stderr
    assert result.stderr.count("itff:***@127.0.0.1:1/itff") >= 5  # message, field, tracebacks
