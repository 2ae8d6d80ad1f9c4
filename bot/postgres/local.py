"""Start, stop and watch a local PostgreSQL server with Debian's server binaries.

Layout under `data_dir` (ITFF_POSTGRES_DATA_DIR, `var/postgres`): `data/` is the cluster
(initdb, owned by the user the server runs as), `password` the generated password of the `itff`
role, `port` the port chosen at the first start. PostgreSQL refuses to run as root: started by
root, the server runs as the system user `postgres` (created when missing) and owns `data/`.
It listens on localhost only, with scram-sha-256 passwords; its socket lives in `data/`.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from bot.contracts import ConfigError, Settings, TransientError

SYSTEM_USER = "postgres"
ROLE = "itff"
DATABASE = "itff"
PREFERRED_PORT = 5432
READY_TIMEOUT_SECONDS = 60
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
# for throw-away test servers: no fsync, so CREATE DATABASE per test costs milliseconds
FAST_OPTIONS = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


@dataclass(frozen=True, slots=True)
class LocalPostgres:
    """Where one local server keeps its cluster and credentials, and how it is started."""

    data_dir: Path
    bin_dir: Path
    port: int | None = None  # None: the port of the first start (5432 when free, else any)
    fast: bool = False  # fsync off: for test servers whose data does not matter

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalPostgres:
        return cls(
            data_dir=settings.postgres_data_dir.absolute(),
            bin_dir=find_bin_dir(settings.postgres_bin_dir),
            port=settings.postgres_port,
        )

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"

    @property
    def port_file(self) -> Path:
        return self.data_dir / "port"

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name)

    def remembered_port(self) -> int | None:
        with suppress(OSError, ValueError):
            return int(self.port_file.read_text(encoding="utf-8").strip())
        return None

    def url(self, port: int | None = None, database: str = DATABASE) -> str:
        """The async SQLAlchemy URL of `database` on this server (for ITFF_DATABASE_URL)."""
        password = self.password_file.read_text(encoding="utf-8").strip()
        chosen = port or self.port or self.remembered_port() or PREFERRED_PORT
        return f"postgresql+asyncpg://{ROLE}:{password}@localhost:{chosen}/{database}"


@dataclass(frozen=True, slots=True)
class StartResult:
    started: bool
    pid: int | None
    port: int
    seconds: float
    initialised: bool = False


@dataclass(frozen=True, slots=True)
class ServerStatus:
    running: bool
    port: int | None
    pid: int | None = None
    uptime_seconds: float | None = None
    rss_bytes: int | None = None


def find_bin_dir(configured: Path | None = None) -> Path:
    """The folder of `initdb`, `pg_ctl` and `postgres`: the configured one, else the newest of
    Debian's `/usr/lib/postgresql/<version>/bin`, else the one on PATH."""
    candidates = [configured] if configured else []
    if not configured:
        versions = sorted(
            DEBIAN_BINARIES.glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
        candidates += reversed(versions)
        if found := shutil.which("initdb"):
            candidates.append(Path(found).parent)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    where = f"ITFF_POSTGRES_BIN_DIR={configured}" if configured else f"{DEBIAN_BINARIES}/*/bin"
    raise ConfigError(
        f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {where}: install Debian's "
        "`postgresql` package (deploy/system-deps.sh does) or set ITFF_POSTGRES_BIN_DIR"
    )


def _port_open(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("localhost", port), timeout=0.5):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _runner() -> pwd.struct_passwd | None:
    """The account the server runs as: `postgres` (created if missing) when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise ConfigError(
                f"PostgreSQL refuses to run as root and there is no system user {SYSTEM_USER} "
                "nor useradd to create it: create that user, or run itff as another user"
            ) from None
        argv = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([*argv, SYSTEM_USER], check=True, capture_output=True)  # noqa: S603
        return pwd.getpwnam(SYSTEM_USER)


def _check_reachable(path: Path, account: pwd.struct_passwd) -> None:
    """Every folder above `path` must let `account` through, or initdb fails obscurely."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for folder in path.parents:
        mode = folder.stat()
        if mode.st_uid == account.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in groups:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            raise ConfigError(
                f"the server runs as the system user {account.pw_name}, which cannot enter "
                f"{folder}; set ITFF_POSTGRES_DATA_DIR to a folder it can reach (under /var/lib)"
            )


def _run(
    server: LocalPostgres, argv: list[str], *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    account = _runner()
    return subprocess.run(  # noqa: S603 - our binaries, no shell
        argv,
        capture_output=True,
        text=True,
        check=False,
        cwd=server.data_dir,
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", **(env or {})},
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )


def _initialise(server: LocalPostgres) -> bool:
    """initdb the cluster once (role `itff` with a generated password). False if it exists."""
    if (server.pgdata / "PG_VERSION").is_file():
        return False
    server.data_dir.mkdir(parents=True, exist_ok=True)
    if not server.password_file.is_file():
        server.password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        server.password_file.chmod(0o600)
    server.pgdata.mkdir(mode=0o700, exist_ok=True)
    pwfile = server.data_dir / ".initdb-password"
    shutil.copyfile(server.password_file, pwfile)
    if (account := _runner()) is not None:
        _check_reachable(server.pgdata, account)
        os.chown(server.pgdata, account.pw_uid, account.pw_gid)
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    try:
        done = _run(
            server,
            [
                server.binary("initdb"),
                f"--pgdata={server.pgdata}",
                f"--username={ROLE}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise ConfigError(f"initdb failed in {server.pgdata}:\n{done.stderr.strip()}")
    return True


def _choose_port(server: LocalPostgres) -> int:
    if server.port is not None:
        if _port_open(server.port):
            raise ConfigError(
                f"port {server.port} is taken by something that is not this server; free it or "
                "set ITFF_POSTGRES_PORT to another port"
            )
        return server.port
    for port in (server.remembered_port(), PREFERRED_PORT):
        if port is not None and not _port_open(port):
            return port
    return _free_port()


def server_process(server: LocalPostgres) -> psutil.Process | None:
    """The live postmaster of `postmaster.pid`, if it is still ours (pids get reused)."""
    try:
        pid = int((server.pgdata / "postmaster.pid").read_text(encoding="utf-8").split()[0])
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = process.cmdline()
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return process if str(server.pgdata) in cmdline else None


def _running_port(server: LocalPostgres) -> int | None:
    """The port in `postmaster.pid` (its fourth line)."""
    with suppress(OSError, ValueError, IndexError):
        lines = (server.pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        return int(lines[3])
    return None


@contextmanager
def _start_lock(server: LocalPostgres) -> Iterator[None]:
    server.data_dir.mkdir(parents=True, exist_ok=True)
    handle = os.open(server.data_dir / ".start.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def start(server: LocalPostgres, *, ready_seconds: int = READY_TIMEOUT_SECONDS) -> StartResult:
    """Start the server unless it runs; initdb and create the `itff` database the first time."""
    began = time.monotonic()
    with _start_lock(server):
        if (process := server_process(server)) is not None:
            port = _running_port(server) or server.remembered_port() or PREFERRED_PORT
            return StartResult(
                started=False, pid=process.pid, port=port, seconds=time.monotonic() - began
            )
        port = _choose_port(server)
        initialised = _initialise(server)
        options = [
            f"-p {port}",
            "-c listen_addresses=localhost",
            f"-c unix_socket_directories='{server.pgdata}'",
            *(FAST_OPTIONS if server.fast else ()),
        ]
        done = _run(
            server,
            [
                server.binary("pg_ctl"),
                "start",
                "--wait",
                f"--timeout={ready_seconds}",
                f"--pgdata={server.pgdata}",
                f"--log={server.log_file}",
                f"--options={' '.join(options)}",
            ],
        )
        if done.returncode != 0:
            raise TransientError(
                f"PostgreSQL did not start on port {port}: {done.stderr.strip()}\n"
                f"{last_log_lines(server)}"
            )
        server.port_file.write_text(f"{port}\n", encoding="utf-8")
        if initialised:
            _create_database(server, port)
        process = server_process(server)
    pid = process.pid if process else None
    seconds = time.monotonic() - began
    return StartResult(started=True, pid=pid, port=port, seconds=seconds, initialised=initialised)


def _create_database(server: LocalPostgres, port: int) -> None:
    password = server.password_file.read_text(encoding="utf-8").strip()
    done = _run(
        server,
        [server.binary("createdb"), "-h", "localhost", "-p", str(port), "-U", ROLE, DATABASE],
        env={"PGPASSWORD": password},
    )
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise TransientError(f"could not create the database {DATABASE}: {done.stderr.strip()}")


def last_log_lines(server: LocalPostgres, count: int = 12) -> str:
    """The error lines of the server log (or its last lines when none), for error messages."""
    lines: list[str] = []
    with suppress(OSError):
        lines = server.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-500:]
    errors = [line for line in lines if any(mark in line for mark in ("ERROR", "FATAL", "PANIC"))]
    shown = "\n".join((errors or lines)[-count:]) or "(no log output)"
    return f"{shown}\n(full log: {server.log_file})"


def stop(server: LocalPostgres, *, timeout: int = 30) -> bool:
    """A fast shutdown (sessions ended, clean checkpoint); immediate after `timeout`. False if
    the server was not running."""
    if server_process(server) is None:
        return False
    argv = [server.binary("pg_ctl"), "stop", "--wait", f"--pgdata={server.pgdata}"]
    done = _run(server, [*argv, "--mode=fast", f"--timeout={timeout}"])
    if done.returncode != 0 and server_process(server) is not None:
        _run(server, [*argv, "--mode=immediate", "--timeout=10"])
    return True


def status(server: LocalPostgres) -> ServerStatus:
    process = server_process(server)
    if process is None:
        return ServerStatus(running=False, port=server.port or server.remembered_port())
    with process.oneshot():
        uptime = time.time() - process.create_time()
        rss = process.memory_info().rss
    return ServerStatus(
        running=True,
        port=_running_port(server),
        pid=process.pid,
        uptime_seconds=uptime,
        rss_bytes=rss,
    )
