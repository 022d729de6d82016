"""Rate limits in the database, shared by every API instance: RATELIMIT_STORAGE_URI=opsguard-database://.

flask-limiter keeps its counters in a `limits` storage; the default (memory://) is one per
process, so two API instances give each principal two budgets. This storage keeps the moving
windows in ops.rate_limit_hits through the API role's functions (ops.api_rate_limit_*), over the
app's own connection pool: the same database, the same leader, nothing more to run. Only the
moving window is supported, the one strategy the API uses (limits.py).
"""

from __future__ import annotations

import time

import psycopg
from limits.storage import MovingWindowSupport, Storage
from psycopg_pool import ConnectionPool, PoolTimeout

SCHEME = "opsguard-database"


class DatabaseStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, pool: ConnectionPool | None = None,
                 **options):
        if pool is None:
            raise ValueError(f"{SCHEME}:// needs the API's connection pool (create_app passes it)")
        self.pool = pool
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (psycopg.Error, PoolTimeout)

    def _one(self, sql: str, *params):
        with self.pool.connection() as conn:
            return conn.execute(sql, params).fetchone()

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self._one("SELECT ops.api_rate_limit_acquire(%s, %s, %s, %s)", key, limit, int(expiry), amount)[0]

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return tuple(self._one("SELECT * FROM ops.api_rate_limit_window(%s, %s)", key, int(expiry)))

    def clear(self, key: str) -> None:
        self._one("SELECT ops.api_rate_limit_clear(%s)", key)

    def reset(self) -> int | None:
        return self._one("SELECT ops.api_rate_limit_clear(NULL)")[0]

    def check(self) -> bool:
        try:
            self._one("SELECT 1")
        except self.base_exceptions:
            return False
        return True

    # the fixed-window calls: the API configures no fixed window (limits.py), so none is ever made
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError(f"{SCHEME}:// keeps moving windows only")

    def get(self, key: str) -> int:
        raise NotImplementedError(f"{SCHEME}:// keeps moving windows only")

    def get_expiry(self, key: str) -> float:
        return time.time()
