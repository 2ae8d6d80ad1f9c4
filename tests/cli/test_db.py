"""`itff db upgrade | downgrade | current` on real SQLite, through the real command line."""

from __future__ import annotations

from pathlib import Path

from storage import migrate
from tests.support.cli import run_itff
from tests.support.env import child_env


def _env(tmp_path: Path) -> dict[str, str]:
    return child_env(ITFF_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'itff.db'}")


def test_downgrade_goes_back_and_upgrade_forward_each_saying_where_the_database_is(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    url = env["ITFF_DATABASE_URL"]
    head = migrate.revisions()[-1]
    up = run_itff(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert f"is at revision {head}" in up.stdout
    back = run_itff(env, "db", "downgrade", "0002")
    assert back.returncode == 0, back.stderr
    assert migrate.current(url) == "0002"
    assert "is at revision 0002" in back.stdout
    now = run_itff(env, "db", "current")
    assert f"is at revision 0002; this version's newest is {head}" in now.stdout
    assert run_itff(env, "db", "upgrade").returncode == 0
    assert migrate.current(url) == head


def test_the_wrong_direction_or_an_unknown_revision_is_one_line_and_changes_nothing(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    url = env["ITFF_DATABASE_URL"]
    assert run_itff(env, "db", "upgrade").returncode == 0
    head = migrate.current(url)
    older = run_itff(env, "db", "upgrade", "0001")
    assert older.returncode == 1
    expected = (
        f"itff: the database is at revision {head}, newer than 0001: upgrade only moves forward; "
        "use `itff db downgrade 0001`"
    )
    assert older.stderr.strip().splitlines() == [expected]
    unknown = run_itff(env, "db", "downgrade", "9999")
    assert unknown.returncode == 1
    assert "unknown revision '9999'" in unknown.stderr
    assert "Traceback" not in older.stderr + unknown.stderr
    assert migrate.current(url) == head


def test_itff_home_places_the_database_whatever_the_working_folder(tmp_path: Path) -> None:
    env = child_env(ITFF_HOME=str(tmp_path / "home"))  # no ITFF_DATABASE_URL: the default
    done = run_itff(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "var" / "itff.db").is_file()
    assert str(tmp_path / "home" / "var" / "itff.db") in done.stdout


def test_an_empty_passphrase_stops_any_command_with_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"ITFF_TRADINGVIEW_PASSPHRASE": ""}
    done = run_itff(env, "db", "current")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "invalid configuration: ITFF_TRADINGVIEW_PASSPHRASE: " in line
    assert "is set but empty" in line
