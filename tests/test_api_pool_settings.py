"""The API's connection pool takes its size and timeouts from the environment, as docs/api.md says
(OPS_DB_POOL_MAX, OPS_DB_TIMEOUT_S, OPS_DB_RECONNECT_S): they were read only from a test config,
so setting them in the environment did nothing. A value that is not a number in range stops the
start with a message that names it."""

from __future__ import annotations

import pytest
from conftest import SECRET


@pytest.fixture
def make(db_url, monkeypatch):
    from opsguard.app import create_app

    made = []

    def build(**env: str):
        monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("OPS_HMAC_SECRET", SECRET)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = create_app()
        made.append(app)
        return app.extensions["opsguard_pool"]

    yield build
    for app in made:
        app.extensions["opsguard_pool"].close()


def test_the_environment_sizes_the_pool(make) -> None:
    pool = make(OPS_DB_POOL_MAX="3", OPS_DB_TIMEOUT_S="0.5", OPS_DB_RECONNECT_S="7")
    assert (pool.max_size, pool.timeout, pool.reconnect_timeout) == (3, 0.5, 7.0)


def test_the_defaults(make, monkeypatch) -> None:
    for key in ("OPS_DB_POOL_MAX", "OPS_DB_TIMEOUT_S", "OPS_DB_RECONNECT_S"):
        monkeypatch.delenv(key, raising=False)
    pool = make()
    assert (pool.max_size, pool.timeout, pool.reconnect_timeout) == (8, 2.0, 2.0)


@pytest.mark.parametrize(("key", "value"), [
    ("OPS_DB_POOL_MAX", "eight"), ("OPS_DB_POOL_MAX", "0"), ("OPS_DB_POOL_MAX", "2.5"), ("OPS_DB_POOL_MAX", "1000"),
    ("OPS_DB_TIMEOUT_S", "nan"), ("OPS_DB_TIMEOUT_S", "-1"), ("OPS_DB_RECONNECT_S", "inf"), ("OPS_DB_RECONNECT_S", ""),
])
def test_a_bad_value_stops_the_start_and_names_the_setting(make, key, value) -> None:
    with pytest.raises(RuntimeError, match=f"opsguard API: {key} must be a .*number from .*, not '{value}'"):
        make(**{key: value})
