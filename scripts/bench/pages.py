"""Reaching people: the tick with 10k due, every incident on a policy whose step pages the one
principal on call in a schedule, when each principal has 3 notification rules (a Slack DM at once,
a webhook after 5 minutes, a verified e-mail after 10: 3 page messages per incident, 30k in all)
beside the same tick when nobody has a rule (the channel post alone), interleaved (goal: ratio
<= 1.3)."""

from __future__ import annotations

import statistics
import time

import psycopg
from localpg import Cluster
from psycopg.types.json import Jsonb

from bench.common import NOW, REPEAT, Figure, fresh_db
from bench.tick import seed

PRINCIPALS = [f"oncall{i}" for i in range(1, 4)]


def _seed_policy(conn: psycopg.Connection) -> None:
    """One schedule taking three principals in daily turns, a one-step policy paging it, and every
    due route of seed() mapped to it: each page names one principal."""
    for i, name in enumerate(PRINCIPALS, 1):
        conn.execute("SELECT ops.add_principal(%s, 'human', '{ops_responder}', 'bench')", (name,))
        conn.execute("SELECT ops.link_chat_identity('slack', 'T1', %s, %s, 'bench')", (f"U{i:03}", name))
    conn.execute("SELECT ops.create_policy('paging', 'bench')")
    conn.execute("SELECT ops.create_schedule('primary', 'Europe/Berlin', 'bench')")
    conn.execute("SELECT ops.add_rotation('primary', 'days', '1 day', '2026-01-05 09:00+01', %s, 'bench')",
                 (PRINCIPALS,))
    conn.execute("SELECT ops.add_policy_step('paging', 1, %s, 'bench')", (Jsonb([{"schedule": "primary"}]),))
    conn.execute("INSERT INTO ops.route_policies (route, policy, updated_by) "
                 "SELECT route, 'paging', 'bench' FROM ops.incidents WHERE next_due_at <= %s", (NOW,))
    conn.execute("VACUUM ANALYZE ops.route_policies")


def _seed_rules(conn: psycopg.Connection) -> None:
    """Three usable rules for each principal: what a page fans out to."""
    for i, name in enumerate(PRINCIPALS, 1):
        dm = conn.execute("SELECT ops.add_contact_method(%s, 'slack_dm', %s, %s)", (name, f"U{i:03}", name)).fetchone()[0]
        hook = conn.execute("SELECT id FROM ops.add_webhook_contact_method(%s, %s, %s)",
                            (name, f"https://pager.example.com/{name}", name)).fetchone()[0]
        mail = conn.execute("SELECT ops.add_contact_method(%s, 'email', %s, %s)",
                            (name, f"{name}@example.com", name)).fetchone()[0]
        conn.execute("UPDATE ops.contact_methods SET verified_at = %s WHERE id = %s", (NOW, mail))
        for method, delay in ((dm, 0), (hook, 5), (mail, 10)):
            conn.execute("SELECT ops.add_notification_rule(%s, %s, %s, %s)", (name, method, delay, name))
    conn.execute("DELETE FROM ops.notification_outbox")  # the verification message of the e-mail
    conn.execute("VACUUM ANALYZE ops.contact_methods, ops.notification_rules, ops.notification_outbox")


def _time_tick(conn: psycopg.Connection, pages: int) -> float:
    """Wall ms of one 10k tick, rolled back; checks it queued the pages it should."""
    conn.execute("VACUUM ops.incidents, ops.escalation_events, ops.notification_outbox, ops.audit_log, ops.tick_log")
    with conn.transaction(force_rollback=True):
        t0 = time.perf_counter()
        summary = conn.execute("SELECT ops.escalation_tick(%s)", (NOW,)).fetchone()[0]
        wall = (time.perf_counter() - t0) * 1000
        got = conn.execute("SELECT count(*) FROM ops.notification_outbox WHERE contact_method IS NOT NULL").fetchone()[0]
    assert summary["escalationsCount"] == 10_000 and got == pages, (summary, got)
    return wall


def bench_pages(cluster: Cluster) -> list[Figure]:
    """Two databases seeded alike (10k due on the policy), one where every principal has 3 rules,
    timed in turn so drift hits both alike."""
    urls = {name: fresh_db(cluster, name) for name in ("bench_pages_off", "bench_pages_on")}
    with psycopg.connect(urls["bench_pages_off"], autocommit=True) as off, \
            psycopg.connect(urls["bench_pages_on"], autocommit=True) as on:
        for conn in (off, on):
            conn.execute("SELECT ops.set_setting('tick_batch_max', '20000', 'bench')")
            seed(conn, 100_000, 10_000)
            _seed_policy(conn)
        _seed_rules(on)
        without, with_ = [], []
        for _ in range(REPEAT + 1):
            without.append(_time_tick(off, 0))
            with_.append(_time_tick(on, 30_000))
    # the first of each warms the caches
    w, p = statistics.median(without[1:]), statistics.median(with_[1:])
    return [
        ("tick with 10k due, no notification rules (ms)", f"{w:.1f}", ""),
        ("tick with 10k due, 3 rules per paged principal (ms)", f"{p:.1f}", ""),
        ("ratio 3 rules / none", f"{p / w:.2f}", "<= 1.3"),
    ]
