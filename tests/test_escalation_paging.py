"""Escalation policies end to end: the real dispatcher (api/opsguard/dispatcher.py) delivers
what the tick queued for each step of a policy to local stand-ins for Slack (scripts/fake_slack.py),
one message per destination, each with its own X-Dedup-Key and the paged principals' mentions."""

from __future__ import annotations

import pytest
from fake_slack import FakeSlack
from opsguard.config import bad_configuration
from opsguard.dispatcher import Dispatcher

DAY = "2026-03-02"  # a Monday


@pytest.fixture
def hooks():
    route, pager = FakeSlack().start(), FakeSlack().start()
    yield route, pager
    route.stop()
    pager.stop()


def setup_policy(conn, pager_url: str) -> None:
    """bob is on call in primary and carol in secondary on Monday; step 3 is dave and a webhook."""
    for p in ("alice", "bob", "carol", "dave"):
        conn.execute("SELECT ops.add_principal(%s, 'human', '{ops_responder}', 'admin')", (p,))
    for p, u in (("alice", "UALICE"), ("bob", "UBOB"), ("carol", "UCAROL")):
        conn.execute("SELECT ops.link_chat_identity('slack', 'T1', %s, %s, 'admin')", (u, p))
    conn.execute("SELECT ops.create_schedule('primary', 'Europe/Berlin', 'admin')")
    conn.execute("SELECT ops.add_rotation('primary', 'days', '1 day', '2026-03-01 09:00+01', "
                 "ARRAY['alice', 'bob', 'carol'], 'admin')")
    conn.execute("SELECT ops.create_schedule('secondary', 'Europe/Berlin', 'admin')")
    conn.execute("SELECT ops.add_rotation('secondary', 'days', '1 day', '2026-03-02 09:00+01', "
                 "ARRAY['carol', 'alice'], 'admin')")
    conn.execute("SELECT ops.create_policy('three', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('three', 1, '[{"schedule": "primary"}]', 'admin')""")
    conn.execute("""SELECT ops.add_policy_step('three', 2, '[{"schedule": "secondary"}]', 'admin')""")
    conn.execute("SELECT ops.add_policy_step('three', 3, jsonb_build_array(jsonb_build_object('principal', 'dave'), "
                 "jsonb_build_object('webhook', %s::text)), 'admin')", (pager_url,))
    conn.execute("SELECT ops.set_route_policy('GET /pay', 'three', 'admin')")


def tick(conn, at: str) -> int:
    return conn.execute("SELECT (ops.escalation_tick(%s) ->> 'escalationsCount')::int", (f"{DAY} {at}Z",)).fetchone()[0]


def drain(d: Dispatcher, conn) -> None:
    for _ in range(50):
        if not conn.execute("SELECT count(*) FROM ops.notification_outbox WHERE status <> 'sent'").fetchone()[0]:
            return
        d.run_once()
    raise AssertionError(conn.execute("SELECT status, last_error FROM ops.notification_outbox").fetchall())


def page_three_levels(conn, hooks, dispatcher):
    """The policy of setup_policy on route GET /pay, its incident escalated three times and every
    message delivered: to the route's webhook (levels 1-3) and to the step's own (level 3)."""
    route, pager = hooks
    setup_policy(conn, pager.url("/services/T9/B9/pager-secret"))
    conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'admin')", (route.url("/services/T1/B1/route"),))
    conn.execute(f"SELECT ops.trigger_incident('GET /pay::slo_violation', 'critical', p_now => '{DAY} 12:00Z')")
    assert [tick(conn, t) for t in ("12:05", "12:35", "13:05")] == [1, 1, 1]
    drain(dispatcher, conn)
    return route, pager


def test_three_steps_page_three_on_call_principals_one_message_per_destination(conn, hooks, dispatcher):
    route, pager = page_three_levels(conn, hooks, dispatcher)
    got = sorted(route.messages(), key=lambda m: m.body["text"])
    assert [m.body["text"] for m in got] == [
        "[CRITICAL] GET /pay::slo_violation escalated to level 1 <@UBOB>",
        "[CRITICAL] GET /pay::slo_violation escalated to level 2 <@UCAROL>",
        "[CRITICAL] GET /pay::slo_violation escalated to level 3",
    ], "each level pages its step's on-call principal, mentioned in the text"
    assert "Paging <@UBOB>" in got[0].body["blocks"][0]["text"]["text"]
    assert got[2].body["blocks"][1]["elements"][0]["text"].endswith("· paged dave"), "dave has no Slack user: named"
    [paged] = pager.messages()
    assert paged.path == "/services/T9/B9/pager-secret"
    assert paged.body["text"] == "[CRITICAL] GET /pay::slo_violation escalated to level 3"

    keys = [m.dedup_key for m in [*got, paged]]
    assert len(set(keys)) == 4 and all(k == m.body["dedup_key"] for k, m in zip(keys, [*got, paged], strict=True))
    level3 = conn.execute("SELECT unique_hash FROM ops.escalation_events WHERE escalation_level = 3").fetchone()[0]
    assert got[2].dedup_key == level3, "the route message keeps the event's unique_hash"
    assert paged.dedup_key != level3

    # replays at the same and at a later clock (before level 4 is due) send nothing twice
    assert [tick(conn, t) for t in ("13:05", "13:20")] == [0, 0]
    assert dispatcher.run_once() == 0
    assert len(route.messages()) == 3 and len(pager.messages()) == 1


def test_without_a_policy_one_message_as_before(conn, hooks, dispatcher):
    route, pager = hooks
    setup_policy(conn, pager.url())
    conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'admin')", (route.url(),))
    conn.execute(f"SELECT ops.trigger_incident('GET /plain::slo_violation', 'critical', p_now => '{DAY} 12:00Z')")
    assert tick(conn, "12:05") == 1
    drain(dispatcher, conn)
    [msg] = route.messages()
    assert msg.body["text"] == "[CRITICAL] GET /plain::slo_violation escalated to level 1"
    assert "Paging" not in msg.body["blocks"][0]["text"]["text"]
    assert msg.dedup_key == conn.execute("SELECT unique_hash FROM ops.escalation_events").fetchone()[0]
    assert pager.messages() == []


def test_a_paging_gap_warns_and_stops_nothing(api, conn):
    """A principal a policy pages with no Slack user is a config_problems row that does not block:
    /healthz stays 200 and lists it under warnings (to a signed admin); every process still starts."""
    conn.execute("SELECT ops.add_principal('dave', 'human', '{ops_responder}', 'admin')")
    conn.execute("SELECT ops.create_policy('solo', 'admin')")
    conn.execute("""SELECT ops.add_policy_step('solo', 1, '[{"principal": "dave"}]', 'admin')""")
    conn.execute("SELECT ops.escalation_tick()")
    resp = api.get("/healthz")
    assert resp.status_code == 200 and resp.json["reasons"] == []
    assert [w for w in resp.json["warnings"] if w.startswith("principals[dave]: dave can be paged (policy solo step 1)")]
    assert bad_configuration(conn, "dispatcher", 1.0) is None
    conn.execute("UPDATE ops.settings SET value = '\"ftp://x\"' WHERE key = 'app_base_url'")
    refused = bad_configuration(conn, "dispatcher", 1.0)
    assert refused.startswith("opsguard dispatcher: bad configuration: setting app_base_url"), refused
    assert "dave" not in refused, "paging gaps are not in the reason a process stops"
