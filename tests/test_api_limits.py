"""Rate limits that hold (docs/api.md#rate-limits): a moving window (no 2x the limit across a
window boundary), keyed by principal on signed endpoints (two principals, two budgets; one
principal from two addresses, one budget), by address for failed signatures and on open
endpoints, and Retry-After only on a 429."""

from __future__ import annotations

import limits.storage.memory
import pytest
from conftest import SECRET, Api
from opsguard.app import create_app
from opsguard.limits import limiter


class Clock:
    """limits' in-memory storage reads time.time(); tests move this clock instead of sleeping."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(1_800_000_000.0)
    monkeypatch.setattr(limits.storage.memory, "time", c)
    return c


@pytest.fixture
def two_keys_api(db_url, conn, openapi_spec):
    """ops-bot and a second admin principal, ci-admin, each with its own key."""
    conn.execute("SELECT ops.add_principal('ci-admin', 'service', '{ops_admin}', 'test')")
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "OPS_HMAC_KEYS": "ci-admin=ci-secret"})
    limiter.reset()
    yield Api(app.test_client(), openapi_spec)
    app.extensions["opsguard_pool"].close()


def ticks(api: Api, n: int, **kw) -> list[int]:
    return [api.post("/ops/escalation/tick", {}, validate=False, **kw).status_code for _ in range(n)]


def test_the_window_moves_no_double_budget_across_a_boundary(api, clock):
    assert ticks(api, 1) == [200]
    clock.now += 59
    assert ticks(api, 9) == [200] * 9
    assert ticks(api, 1) == [429]
    # a fixed window that opened with the first tick would start afresh here and allow 10
    # more: 19 in two seconds; the moving window has freed only the first tick's slot
    clock.now += 2
    assert ticks(api, 2) == [200, 429]
    clock.now += 59
    assert ticks(api, 9) == [200] * 9
    assert ticks(api, 1) == [429]


def test_two_principals_have_a_budget_each(two_keys_api, clock):
    assert ticks(two_keys_api, 11) == [200] * 10 + [429]
    assert ticks(two_keys_api, 11, secret="ci-secret") == [200] * 10 + [429]


def test_one_principal_from_two_addresses_shares_one_budget(api, clock):
    assert ticks(api, 6) == [200] * 6
    api.client.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    assert ticks(api, 5) == [200] * 4 + [429]


def test_ack_and_resolve_keep_a_budget_each_per_principal(api, conn, clock):
    ids = [str(conn.execute("SELECT id FROM ops.trigger_incident(%s, 'warning')", (f"GET /l{i}::x",)).fetchone()[0])
           for i in range(2)]
    for _ in range(120):
        assert api.post(f"/ops/incidents/{ids[0]}/ack", {}, validate=False).status_code == 200
    assert api.post(f"/ops/incidents/{ids[1]}/ack", {}, validate=False).status_code == 429
    assert api.post(f"/ops/incidents/{ids[1]}/resolve", {}, validate=False).status_code == 200


def test_failed_signatures_are_bounded_by_address(two_keys_api, clock):
    api = two_keys_api
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    bad = ticks(api, 31, secret="guessed")
    assert bad == [401] * 30 + [429]
    # the guessing address is refused even with a valid signature, until the window moves
    assert ticks(api, 1) == [429]
    # valid callers elsewhere are not charged, and the open guard stays open to that address
    assert api.get("/ops/release-guard", secret=None).status_code == 200
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.1"
    assert ticks(api, 1) == [200]
    clock.now += 61
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    assert ticks(api, 1) == [200]


def test_valid_signatures_do_not_use_the_failed_signature_budget(api, clock):
    assert ticks(api, 10) == [200] * 10
    assert [api.get("/me/permissions", validate=False).status_code for _ in range(40)] == [200] * 40


def test_the_open_guard_is_limited_by_address(api, clock):
    statuses = [api.get("/ops/release-guard", secret=None, validate=False).status_code for _ in range(301)]
    assert statuses == [200] * 300 + [429]
    api.client.environ_base["REMOTE_ADDR"] = "10.1.1.1"
    assert api.get("/ops/release-guard", secret=None).status_code == 200


def test_only_a_429_carries_retry_after(api, conn):
    clear = api.get("/ops/release-guard", secret=None)
    assert clear.status_code == 200 and "Retry-After" not in clear.headers
    assert "X-RateLimit-Remaining" in clear.headers  # the budget is still announced
    conn.execute("SELECT ops.trigger_incident('GET /r::slo_violation', 'critical')")
    blocked = api.get("/ops/release-guard", secret=None)
    assert blocked.status_code == 409 and "Retry-After" not in blocked.headers
    answers = [api.post("/ops/escalation/tick", {}, validate=False) for _ in range(11)]
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    assert not any("Retry-After" in r.headers for r in answers[:10])
    limited = answers[10]
    assert limited.json["error"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 60


def test_an_app_without_rate_limits_does_not_turn_them_off_for_the_next(db_url, openapi_spec, clock):
    """The limiter is one object per process; an app made with RATELIMIT_ENABLED=False (the
    outage tests, the bench) must not leave the apps made after it unlimited."""
    off = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "RATELIMIT_ENABLED": False})
    off.extensions["opsguard_pool"].close()
    app = create_app({"DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET})
    limiter.reset()
    try:
        assert ticks(Api(app.test_client(), openapi_spec), 11) == [200] * 10 + [429]
    finally:
        app.extensions["opsguard_pool"].close()
