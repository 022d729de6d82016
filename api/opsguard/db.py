"""The connection pool, and the one way views talk to the database: call one function."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask, current_app
from psycopg import Connection
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool


def make_pool(app: Flask) -> ConnectionPool:
    # the OPS_DB_* values were parsed and range-checked by create_app (settings.py)
    role = app.config["OPS_DB_ROLE"]

    def configure(conn: Connection) -> None:
        # least privilege even when DATABASE_URL names a broader user: the API role may
        # only execute the ops.api_* functions
        if role:
            conn.execute("SELECT set_config('role', %s, false)", (role,))
        conn.execute("SET statement_timeout = '5s'")

    pool = ConnectionPool(
        app.config["DATABASE_URL"],
        min_size=1,
        # as many connections as gunicorn has threads (api/gunicorn.conf.py, OPS_THREADS)
        max_size=app.config["OPS_DB_POOL_MAX"],
        timeout=app.config["OPS_DB_TIMEOUT_S"],
        kwargs={"autocommit": True, "connect_timeout": 2},
        configure=configure,
        check=ConnectionPool.check_connection,  # a connection that died with the server is replaced
        # psycopg_pool replaces each lost connection with a task that retries with exponential
        # backoff (1, 2, 4, 8, 16 s ...) until reconnect_timeout (default 5 min), and counts
        # that task as a connection meanwhile: after a 15 s outage the pool sat "full" of tasks
        # asleep for up to 16 more seconds, with no room to grow, so requests kept failing
        # long after the database was back, a few at a time as each task woke. Giving a task
        # up after 2 s frees its slot; a waiting request then starts a fresh attempt at once
        # (the pool grows on demand), so reconnection follows the requests, not a timer.
        reconnect_timeout=app.config["OPS_DB_RECONNECT_S"],
        open=False,
    )
    pool.open(wait=False)  # the API starts (and answers 503) while the database is away
    return pool


def call(sql: str, *params: Any) -> Any:
    """Run one SELECT of one API function and return its single value."""
    params = tuple(Jsonb(p) if isinstance(p, dict | list) else p for p in params)
    with current_app.extensions["opsguard_pool"].connection() as conn:
        try:
            return conn.execute(sql, params).fetchone()[0]
        except psycopg.errors.ReadOnlySqlTransaction:
            # this connection reached a standby (a proxy that sent it there, a leader demoted
            # under it): closed, the pool drops it and connects again, to the host that is
            # writable now when DATABASE_URL lists every host with target_session_attrs=read-write
            conn.close()
            raise
