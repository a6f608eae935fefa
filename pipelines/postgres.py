"""A throw-away PostgreSQL server: Debian's ``postgresql`` binaries, a cluster in a temporary
folder, on a free loopback port, stopped and removed afterwards.

For the tests of the SQL sink and its benchmark (issue 14): a real server, never a mock, started
the way a person would (``initdb``, ``postgres``), with ``fsync`` off because the data is thrown
away.  As root (CI), the server runs as the ``postgres`` system user the Debian package creates:
PostgreSQL refuses to run as root.  ``make test`` installs the package when it is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from circus_core import CircusError
from pipelines.emulators import free_port, stop_group

__all__ = ["PostgresNotInstalledError", "postgres_bin", "postgres_server"]

#: the role and database of the throw-away cluster
USER = DATABASE = "circus"


class PostgresNotInstalledError(CircusError):
    """No PostgreSQL server binaries on this machine."""


def postgres_bin() -> Path:
    """The folder of the newest installed PostgreSQL server's binaries (``initdb``, ``postgres``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresNotInstalledError(
        "no PostgreSQL server found (initdb): install Debian's 'postgresql' package (make test does, as root)"
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    """``cmd`` run as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server for the block; yields its SQLAlchemy URL
    (``postgresql+psycopg://circus@127.0.0.1:<port>/circus``, trust authentication on loopback)."""
    bin_dir = postgres_bin()
    base = Path(tempfile.mkdtemp(prefix="circus-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        log = open(base / "server.log", "wb")  # noqa: SIM115 -- the server writes it until stopped
        proc = subprocess.Popen(
            _as_server_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(base),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_ready(bin_dir, port, proc, base / "server.log")
        subprocess.run(
            _as_server_user([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE]),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if proc is not None:
            stop_group(proc, signal.SIGINT, 30)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(bin_dir: Path, port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    """Until the server accepts queries (``pg_isready``), or fails, with its log in the error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CircusError(f"PostgreSQL exited at start ({proc.returncode}): {log.read_text()[-2000:]}")
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    raise CircusError(f"PostgreSQL did not accept connections on port {port} within {timeout_s:.0f} s")
