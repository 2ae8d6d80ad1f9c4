"""Every setting is documented: the README's configuration table and .env.example list each
`Settings` field with its real default; no secret has a value in the example file."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from bot.artifacts import generate_keypair
from bot.contracts import Settings

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\|\s*`(ITFF_[A-Z0-9_]+)`\s*\|[^|]*\|\s*([^|]*?)\s*\|", re.MULTILINE)


def config_section() -> str:
    """The table between the README's config markers (or docs/configuration.md before a README)."""
    readme = ROOT / "README.md"
    if readme.is_file() and "<!-- config:start -->" in readme.read_text():
        text = readme.read_text()
        return text.split("<!-- config:start -->", 1)[1].split("<!-- config:end -->", 1)[0]
    return (ROOT / "docs" / "configuration.md").read_text()


def variable(field: str) -> str:
    return f"ITFF_{field.upper()}"


def shown(value: object) -> str:
    if value is None or value == []:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "`changethis (placeholder)`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def test_every_setting_is_in_the_configuration_table_with_its_default() -> None:
    rows = dict(ROW.findall(config_section()))
    expected = {variable(name) for name in Settings.model_fields}
    missing = sorted(expected - set(rows))
    assert not missing, f"undocumented settings (add them to the README table): {missing}"
    stale = sorted(set(rows) - expected)
    assert not stale, f"documented but no longer settings: {stale}"
    for name, field in Settings.model_fields.items():
        value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        assert rows[variable(name)] == shown(value), f"{variable(name)}: default is {value!r}"


def test_env_example_lists_every_setting_and_no_secret_value() -> None:
    text = (ROOT / ".env.example").read_text()
    assigned = dict(re.findall(r"^#?\s*(ITFF_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    missing = sorted({variable(name) for name in Settings.model_fields} - set(assigned))
    assert not missing, f".env.example lacks {missing}"
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation):
            assert assigned[variable(name)] == "", f"{variable(name)} has a value in .env.example"
    active = re.findall(r"^(ITFF_[A-Z0-9_]+)=(.+)$", text, re.MULTILINE)
    assert not active, f"only empty secrets are uncommented: {active}"


def test_the_example_file_loads_once_the_secrets_are_filled(tmp_path: Path) -> None:
    """Copying .env.example and filling the secrets gives a valid production configuration."""
    private, public = generate_keypair()  # keys have a format: filled from `itff artifacts keygen`
    text = (ROOT / ".env.example").read_text()
    for name, value in (("SIGNING_KEY", private), ("PUBLIC_KEYS", public)):
        text = text.replace(f"\nITFF_ARTIFACT_{name}=\n", f"\nITFF_ARTIFACT_{name}={value}\n")
    filled = re.sub(
        r"^(ITFF_[A-Z0-9_]+)=$", r"\1=0123456789abcdef-filled-secret", text, flags=re.MULTILINE
    )
    assert "\nITFF_WEBHOOK_SECRET=" not in filled  # optional secrets stay commented out
    path = tmp_path / ".env"
    path.write_text(filled + "\nITFF_ENV=production\n")
    settings = Settings(_env_file=path)  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.tradingview_passphrase.get_secret_value() == "0123456789abcdef-filled-secret"


def test_platform_values_are_understood() -> None:
    """Render/Heroku PostgreSQL URLs get the async driver; compose's empty `${X:-}` means unset."""
    from bot.contracts import load_settings

    url = load_settings(database_url="postgres://u:p@db:5432/itff").database_url
    assert url == "postgresql+asyncpg://u:p@db:5432/itff"
    assert load_settings(database_url="postgresql://u@db/itff").database_url.startswith(
        "postgresql+asyncpg://"
    )
    blank = load_settings(artifact_base_url="", kafka_bootstrap="", s3_bucket=" ")
    assert blank.artifact_base_url is None
    assert blank.s3_bucket is None
    assert blank.bootstrap == f"localhost:{blank.kafka_port}"
