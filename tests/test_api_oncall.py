"""Who is on call over HTTP and Slack, and the calendar feed (docs/oncall.md), against the real app:
GET /ops/oncall signed (200, 401, 403, 404); Slack /oncall with a real v0 signature; the feed
parsed with `ical` (another library than the `icalendar` that writes it) and with `recurring-ical-events`,
listing exactly the shifts ops.on_call_shifts returns (to the second, across a repeated hour), with UIDs stable
across fetches and a SEQUENCE that grows when an event's end moves; every bad token and an
unknown schedule answered with one and the same 404; and the feed through a real gunicorn."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events
from ical.calendar_stream import IcsCalendarStream
from opsguard.views import oncall as oncall_view
from real_senders import gunicorn
from test_api_bad_input import checksum
from test_api_limits import clock  # noqa: F401 - the fixture that moves the rate limiter's clock
from test_api_slack import command, slack_app, slack_post  # noqa: F401 - slack_app is a fixture
from test_e2e_gunicorn import server  # noqa: F401 - the gunicorn fixture

# the window the feed covers, computed here as docs/oncall.md states it: whole UTC days
WINDOW = "date_trunc('day', now(), 'UTC') - interval '7 days', date_trunc('day', now(), 'UTC') + interval '8 weeks'"


@pytest.fixture
def primary(conn) -> dict:
    """primary (Berlin): alice and bob take turns daily, the current turn (alice) began an hour
    ago on the minute; carol covers three hours tomorrow. pipeline (role ci) may not read it.
    Times on the minute, as people set them: iCalendar carries whole seconds."""
    conn.execute("SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_viewer'], 'admin')")
    conn.execute("SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('pipeline', 'service', ARRAY['ci'], 'admin')")
    conn.execute("SELECT ops.create_schedule('primary', 'Europe/Berlin', 'admin')")
    handoff = conn.execute("SELECT date_trunc('minute', now()) - interval '1 hour'").fetchone()[0]
    conn.execute("SELECT ops.add_rotation('primary', 'daily', '1 day', %s, ARRAY['alice', 'bob'], 'admin')", (handoff,))
    conn.execute("SELECT ops.add_override('primary', 'carol', %s + interval '31 hours', %s + interval '34 hours',"
                 " 'admin', 'swap: carol covers bob')", (handoff, handoff))
    token = conn.execute("SELECT ops.schedule_feed_token('primary', 'admin')").fetchone()[0]
    return {"handoff": handoff, "token": token}


def test_who_is_on_call_signed(api, conn, primary):
    resp = api.get("/ops/oncall", query={"schedule": "primary"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["ok"] is True
    # the next handoff: the same Berlin wall-clock time a day later
    until = conn.execute("SELECT ((%s AT TIME ZONE 'Europe/Berlin') + interval '1 day') AT TIME ZONE 'Europe/Berlin'",
                         (primary["handoff"],)).fetchone()[0].astimezone(UTC).isoformat()
    assert body["onCall"] == [{"schedule": "primary", "timeZone": "Europe/Berlin", "principal": "alice", "until": until}]
    everything = api.get("/ops/oncall").get_json()
    assert [e["schedule"] for e in everything["onCall"]] == ["primary"]


def test_unsigned_is_401_without_permission_403_unknown_schedule_404(api, conn, primary):
    before = checksum(conn)
    resp = api.get("/ops/oncall", secret=None)
    assert (resp.status_code, resp.get_json()["error"]) == (401, "unauthorized")
    resp = api.get("/ops/oncall", actor="pipeline")
    assert (resp.status_code, resp.get_json()["error"]) == (403, "forbidden")
    resp = api.get("/ops/oncall", actor="bob", query={"schedule": "primary"})
    assert resp.status_code == 200, "a viewer may see who is on call"
    resp = api.get("/ops/oncall", query={"schedule": "nope"})
    assert (resp.status_code, resp.get_json()["error"], resp.get_json()["sqlstate"]) == (404, "not_found", "P0002")
    assert 'no schedule "nope"' in resp.get_json()["message"]
    assert checksum(conn) == before, "reading who is on call changes nothing"


def test_slack_oncall(slack_app, openapi_spec, conn, primary):  # noqa: F811 - the fixture imported above
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UALICE', 'alice', 'admin')")
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UPIPE', 'pipeline', 'admin')")
    body = slack_post(slack_app, openapi_spec, command("UALICE", "/oncall", "primary")).get_json()
    assert (body["ok"], body["response_type"]) == (True, "ephemeral")
    assert body["text"].startswith("On call now:\n• *primary*: alice until <!date^")
    assert [(e["schedule"], e["principal"]) for e in body["onCall"]] == [("primary", "alice")]
    body = slack_post(slack_app, openapi_spec, command("UALICE", "/oncall", "nope")).get_json()
    assert (body["ok"], body["error"]) == (False, "not_found")
    body = slack_post(slack_app, openapi_spec, command("UPIPE", "/oncall")).get_json()
    assert (body["ok"], body["error"]) == (False, "forbidden")


def fetch_feed(api, name: str, token: str | None):
    """GET the feed as a calendar app does (no signature), checking the answer against docs/openapi.yaml."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    query = {} if token is None else {"token": token}
    path = f"/ops/schedules/{name}/calendar.ics"
    resp = api.client.get(path, query_string=query)
    req = Request(EnvironBuilder(path=path, method="GET", query_string=query).get_environ())
    api.spec.validate_response(WerkzeugOpenAPIRequest(req), WerkzeugOpenAPIResponse(resp))
    return resp


def expected_shifts(conn) -> list[tuple]:
    return conn.execute(f"SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('primary', {WINDOW})"
                        " ORDER BY starts_at").fetchall()


def test_the_feed_lists_exactly_the_shifts_sql_computes(api, conn, primary):
    before = expected_shifts(conn)
    resp = fetch_feed(api, "primary", primary["token"])
    after = expected_shifts(conn)  # the window moves at midnight UTC: the feed matches one side of it
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/calendar; charset=utf-8"
    cal = IcsCalendarStream.calendar_from_ics(resp.get_data(as_text=True))
    assert (cal.prodid, cal.version) == ("-//opsguard//on-call calendar feed//EN", "2.0")
    assert "X-WR-CALNAME:primary on call" in resp.get_data(as_text=True)
    got = [(e.summary.split(" ")[0], e.dtstart, e.dtend) for e in sorted(cal.events, key=lambda e: e.dtstart)]
    assert got in (before, after)
    assert len(got) >= 9 and {p for p, _, _ in got} == {"alice", "bob", "carol"}
    assert all(e.summary == f"{e.summary.split(' ')[0]} on call (primary)" for e in cal.events)
    assert all(e.dtstart.tzinfo is not None and e.dtstart.utcoffset().total_seconds() == 0 for e in cal.events)
    uids = [e.uid for e in cal.events]
    assert len(set(uids)) == len(uids), "a UID per shift"
    again = IcsCalendarStream.calendar_from_ics(fetch_feed(api, "primary", primary["token"]).get_data(as_text=True))
    assert sorted(e.uid for e in again.events) == sorted(uids), "the same UIDs on the next fetch"


def test_every_bad_token_and_an_unknown_schedule_get_the_same_404(api, conn, primary):
    conn.execute("SELECT ops.create_schedule('secondary', 'UTC', 'admin')")
    before = checksum(conn)
    unknown = fetch_feed(api, "nope", primary["token"])
    assert unknown.status_code == 404 and unknown.mimetype == "application/json"
    assert unknown.get_json()["ok"] is False and unknown.get_json()["error"] == "not_found"
    for name, token in [("primary", "ogf_" + "0" * 64), ("primary", None), ("primary", ""),
                        ("secondary", primary["token"]), ("secondary", None), ("nope", None)]:
        resp = fetch_feed(api, name, token)
        assert (resp.status_code, resp.get_data()) == (404, unknown.get_data()), (name, token)
    assert checksum(conn) == before, "a refused fetch changes nothing"

    assert fetch_feed(api, "primary", primary["token"]).status_code == 200
    conn.execute("SELECT ops.schedule_feed_token('primary', 'admin')")  # rotated
    resp = fetch_feed(api, "primary", primary["token"])
    assert (resp.status_code, resp.get_data()) == (404, unknown.get_data()), "the old token fails at once, the same way"


def test_the_feed_is_limited_by_address_and_open_to_failed_signers(api, primary, clock):  # noqa: F811
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    assert [api.get("/me/permissions", secret="guessed", validate=False).status_code for _ in range(31)][-1] == 429
    assert fetch_feed(api, "primary", primary["token"]).status_code == 200, "a failed signer's address still gets the feed"
    statuses = [fetch_feed(api, "primary", "ogf_guess").status_code for _ in range(300)]
    assert statuses == [404] * 299 + [429], "300 a minute per address, refused fetches included"
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.1"
    assert fetch_feed(api, "primary", primary["token"]).status_code == 200, "another address has its own budget"
    clock.now += 61
    api.client.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    assert fetch_feed(api, "primary", primary["token"]).status_code == 200


def test_the_feed_through_gunicorn(server, db_url, conn, primary):  # noqa: F811 - the fixture imported above
    url = f"{server}/ops/schedules/primary/calendar.ics?token={primary['token']}"
    before = expected_shifts(conn)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/calendar; charset=utf-8"
        cal = IcsCalendarStream.calendar_from_ics(resp.read().decode())
    got = [(e.summary.split(" ")[0], e.dtstart, e.dtend) for e in sorted(cal.events, key=lambda e: e.dtstart)]
    assert got in (before, expected_shifts(conn))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server}/ops/schedules/primary/calendar.ics?token=ogf_nope", timeout=10)
    assert refused.value.code == 404


def test_the_access_log_never_shows_a_feed_token(db_url, conn, primary, tmp_path):
    """The token is the feed's only secret and sits in the URL: gunicorn's access log (stdout
    under make run) writes the request line with a [redacted] token, and keeps the rest."""
    log = tmp_path / "access.log"
    with gunicorn(db_url, {"OPS_ACCESS_LOG": str(log)}) as base:
        for token in (primary["token"], "ogf_" + "ab" * 32):
            try:
                urllib.request.urlopen(f"{base}/ops/schedules/primary/calendar.ics?x=1&token={token}", timeout=10)
            except urllib.error.HTTPError as refused:
                assert refused.code == 404
    lines = [line for line in log.read_text().splitlines() if "calendar.ics" in line]
    assert len(lines) == 2, lines
    assert all("/ops/schedules/primary/calendar.ics?x=1&token=[redacted] HTTP/1.1" in line for line in lines), lines
    assert primary["token"] not in log.read_text() and "ab" * 32 not in log.read_text()


def test_slack_oncall_tells_strangers_nothing(slack_app, openapi_spec, conn, primary):  # noqa: F811
    """An unlinked Slack user, and a linked one without oncall.read, learn neither who is on call nor
    which schedules exist, whatever schedule they ask for."""
    conn.execute("SELECT ops.link_chat_identity('slack', 'T1', 'UPIPE', 'pipeline', 'admin')")
    for user in ("UNOBODY", "UPIPE"):
        for args in ("", "primary", "nope", "primary <!channel>"):
            body = slack_post(slack_app, openapi_spec, command(user, "/oncall", args)).get_json()
            assert body["ok"] is False, (user, args, body)
            text = str(body)
            assert "primary" not in text and "alice" not in text and "onCall" not in body, (user, args, body)


def feed_at(conn, schedule: str, token: str, now) -> bytes:
    """The feed as the endpoint renders it, for a chosen now (the window follows it)."""
    feed = conn.execute("SELECT ops.api_schedule_feed(%s, %s, %s)", (schedule, token, now)).fetchone()[0]
    return oncall_view.render(feed, stamp=datetime.now(UTC))


def test_the_feed_reads_the_same_in_two_readers_across_a_repeated_hour(conn, primary):
    """New York's 1 November: 01:00-02:00 happens twice. An hourly rotation and an override hand off within
    it; both readers must give exactly the instants of ops.on_call_shifts. With X-WR-TIMEZONE in the feed,
    recurring-ical-events (through x-wr-timezone) moved the edges in the repeated hour an hour early."""
    conn.execute("SELECT ops.create_schedule('ny', 'America/New_York', 'admin')")
    conn.execute("SELECT ops.add_rotation('ny', 'hourly', '1 hour', '2026-10-31 04:15Z', ARRAY['alice', 'bob', 'carol'],"
                 " 'admin')")
    conn.execute("SELECT ops.add_override('ny', 'carol', '2026-11-01 05:50Z', '2026-11-01 06:10Z', 'admin', 'cover')")
    token = conn.execute("SELECT ops.schedule_feed_token('ny', 'admin')").fetchone()[0]
    body = feed_at(conn, "ny", token, datetime(2026, 11, 1, 12, tzinfo=UTC))
    start, end = datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC)
    expected = sorted((p, s, e) for p, s, e, _ in conn.execute(
        "SELECT * FROM ops.on_call_shifts('ny', %s, %s)", (start, end)).fetchall())
    assert any(s.hour == 6 and s.day == 1 and s.month == 11 for _, s, _ in expected), "edges in the second 01:xx"

    events = recurring_ical_events.of(icalendar.Calendar.from_ical(body)).between(start, end)
    got = sorted((str(e["SUMMARY"]).split(" ")[0], e["DTSTART"].dt.astimezone(UTC), e["DTEND"].dt.astimezone(UTC))
                 for e in events)
    assert got == expected, "recurring-ical-events"
    cal = IcsCalendarStream.calendar_from_ics(body.decode())
    got = sorted((e.summary.split(" ")[0], e.dtstart.astimezone(UTC), e.dtend.astimezone(UTC)) for e in cal.events)
    assert got == expected, "ical"
    assert b"X-WR-TIMEZONE" not in body


def test_an_override_added_now_starts_in_the_feed_when_it_starts(api, conn, primary):
    """now() has microseconds; iCalendar has whole seconds. The override keeps whole seconds, so the feed
    and SQL name the same instant (the feed showed it starting up to a second before it did)."""
    conn.execute("SELECT ops.add_override('primary', 'carol', clock_timestamp(), clock_timestamp() + interval '10 minutes',"
                 " 'admin', 'cover from now')")
    starts = conn.execute("SELECT starts_at FROM ops.schedule_overrides WHERE reason = 'cover from now'").fetchone()[0]
    before = expected_shifts(conn)
    cal = IcsCalendarStream.calendar_from_ics(fetch_feed(api, "primary", primary["token"]).get_data(as_text=True))
    got = [(e.summary.split(" ")[0], e.dtstart, e.dtend) for e in sorted(cal.events, key=lambda e: e.dtstart)]
    assert got in (before, expected_shifts(conn))
    assert ("carol", starts) in [(p, s) for p, s, _ in got]
    assert starts.microsecond == 0, "stored to the whole second"


def events_by_uid(body: bytes) -> dict:
    cal = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): (e["DTEND"].dt, int(e["SEQUENCE"]), e["LAST-MODIFIED"].dt) for e in cal.walk("VEVENT")}


def test_an_event_whose_end_moves_gets_a_higher_sequence(api, conn, primary):
    """An event keeps its UID (schedule, principal, start) when its end moves; SEQUENCE and LAST-MODIFIED
    must grow then, or a calendar app may keep the old end. Two ways an end moves: the schedule changes
    (carol's override is removed, so bob's turn no longer stops for it), and the window moves a day (its
    last event was cut at the window's end)."""
    first = events_by_uid(fetch_feed(api, "primary", primary["token"]).get_data())
    assert events_by_uid(fetch_feed(api, "primary", primary["token"]).get_data()) == first, "nothing changed: the same"
    conn.execute("SELECT ops.remove_override((SELECT id FROM ops.schedule_overrides WHERE principal = 'carol'), 'admin')")
    second = events_by_uid(fetch_feed(api, "primary", primary["token"]).get_data())
    moved = [uid for uid in first.keys() & second.keys() if first[uid][0] != second[uid][0]]
    assert moved, "bob's turn now ends at the next handoff"
    for uid in moved:
        assert second[uid][1] > first[uid][1] and second[uid][2] > first[uid][2], uid

    today = conn.execute("SELECT date_trunc('day', now(), 'UTC') + interval '12 hours'").fetchone()[0]
    day1 = events_by_uid(feed_at(conn, "primary", primary["token"], today))
    day2 = events_by_uid(feed_at(conn, "primary", primary["token"], today + timedelta(days=1)))
    moved = [uid for uid in day1.keys() & day2.keys() if day1[uid][0] != day2[uid][0]]
    assert moved, "the last event of the first window is cut at its end, and is not the next day"
    for uid in moved:
        assert day2[uid][1] > day1[uid][1] and day2[uid][2] > day1[uid][2], uid
    assert all(day2[uid][1] >= day1[uid][1] for uid in day1.keys() & day2.keys()), "never lower"
