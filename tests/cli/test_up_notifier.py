"""`itff up` supervises the notifier once a destination is set, and says why not otherwise."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.cli import _register_all
from bot.cli.up import _services
from bot.contracts import Settings


@pytest.fixture(autouse=True)
def commands() -> None:
    _register_all()


def test_without_a_destination_the_notifier_is_not_started(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = _services(settings, skip=())
    assert "notifier" not in [spec.name for spec in specs]
    assert "notifier   not started: no destination" in capsys.readouterr().out


def test_with_a_destination_the_notifier_is_supervised(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"discord_webhook_url": SecretStr("http://127.0.0.1:1/api/webhooks/1/x")}
    )
    (spec,) = [spec for spec in _services(configured, skip=()) if spec.name == "notifier"]
    assert spec.argv[-1] == "notifier"
