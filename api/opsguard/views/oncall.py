"""Who is on call (docs/oncall.md): GET /ops/oncall, signed, needs oncall.read; and the calendar feed
GET /ops/schedules/<name>/calendar.ics?token=<feed token>, open (a calendar app cannot sign)
and rate limited per address like the release guard. Both answers come from SQL
(ops.api_oncall, ops.api_schedule_feed: the shifts, their UIDs and summaries); this module
only renders the feed as iCalendar (RFC 5545) with the icalendar library. The token is checked
in SQL by its SHA-256 through the table, never compared here; a bad token and an unknown
schedule are the same P0002, so the same 404 body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
from flask import Blueprint, Response, g, jsonify, request

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter

bp = Blueprint("oncall", __name__)

PRODID = "-//opsguard//on-call calendar feed//EN"
# how often calendar apps that honour it (RFC 7986 REFRESH-INTERVAL, X-PUBLISHED-TTL) fetch again
REFRESH = timedelta(hours=1)


@bp.get("/ops/oncall")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def who_is_on_call():
    return jsonify(call("SELECT ops.api_oncall(%s, %s, %s)",
                        g.caller.principal, g.caller.actor, request.args.get("schedule")))


@bp.get("/ops/schedules/<name>/calendar.ics")
@limiter.limit(limits.READ)
def calendar(name: str):
    feed = call("SELECT ops.api_schedule_feed(%s, %s)", name, request.args.get("token"))
    body = render(feed, stamp=datetime.now(UTC))
    return Response(body, content_type="text/calendar; charset=utf-8", headers={
        # the URL carries a secret: shared caches keep nothing
        "Cache-Control": "private, max-age=300",
        "Content-Disposition": f'inline; filename="{feed["schedule"]}.ics"',
    })


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def render(feed: dict, stamp: datetime) -> bytes:
    """The VCALENDAR of ops.api_schedule_feed's answer: one VEVENT per shift, times in UTC (whole seconds, as
    overrides and handoffs are stored)."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", feed["name"])
    # no X-WR-TIMEZONE: every time here is UTC, and readers that honour it (x-wr-timezone, as
    # recurring-ical-events uses it) move UTC times into that zone and put edges in a repeated hour an hour early
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", icalendar.vDuration(REFRESH).to_ical().decode())
    for shift in feed["shifts"]:
        event = icalendar.Event()
        event.add("uid", shift["uid"])
        event.add("dtstamp", stamp)
        # an event keeps its UID when its end moves (a changed override, the window's last event): SEQUENCE and
        # LAST-MODIFIED grow then, so calendar apps replace the copy they hold
        event.add("sequence", shift["sequence"])
        event.add("last-modified", _utc(shift["lastModified"]).replace(microsecond=0))
        event.add("dtstart", _utc(shift["startsAt"]))
        event.add("dtend", _utc(shift["endsAt"]))
        event.add("summary", shift["summary"])
        event.add("description", f"source: {shift['source']}")
        event.add("transp", "TRANSPARENT")  # being on call does not make anyone busy
        cal.add_component(event)
    return cal.to_ical()
