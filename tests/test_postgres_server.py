"""The throw-away PostgreSQL server the SQL sink is tested against (pipelines/postgres.py): a
real server from Debian's package, on a free loopback port, gone afterwards."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from pipelines.postgres import postgres_server


def test_a_real_server_starts_answers_sql_and_is_gone_afterwards() -> None:
    with postgres_server() as url:
        engine = sa.create_engine(url)
        with engine.begin() as db:
            db.execute(sa.text("CREATE TABLE calls (id bigint PRIMARY KEY, duration double precision)"))
            db.execute(sa.text("INSERT INTO calls VALUES (1, 2.5), (2, 4.0)"))
        with engine.connect() as db:
            assert db.execute(sa.text("SELECT sum(duration) FROM calls")).scalar() == 6.5
            assert db.execute(sa.text("SHOW server_version")).scalar().split(".")[0].isdigit()
        engine.dispose()
        port = urlsplit(url).port
    assert port is not None
    with pytest.raises(ConnectionRefusedError):  # the server stopped
        socket.create_connection(("127.0.0.1", port), timeout=2)
