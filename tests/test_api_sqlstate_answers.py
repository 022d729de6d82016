"""One SQLSTATE -> HTTP table (api/opsguard/errors.py) for every view: the Events API v2 and
change-event endpoints answer in PagerDuty's shapes, but with the status the table gives, so a
SQLSTATE the app calls a retryable outage is one for a PagerDuty sender too, and so on."""

from __future__ import annotations

import psycopg
from opsguard import errors
from opsguard.views import intake_events_v2

# every exact entry, and one member of each class the table names or leaves out
STATES = sorted(set(errors.SQLSTATE_HTTP) | {
    "22001", "22004", "22023", "23514", "54001", "08006", "53100", "57P01", "40002", "40003",
    "23502", "42P01", "XX000"})


def _error(state: str) -> psycopg.Error:
    try:
        cls = psycopg.errors.lookup(state)
    except KeyError:  # opsguard's own SQLSTATEs (OG410): psycopg raises them as a DatabaseError carrying the code
        cls = type(f"Error{state}", (psycopg.errors.DatabaseError,), {"sqlstate": state})
    return cls(f"failed with {state}")


def test_events_v2_answers_the_status_of_the_apps_table(app):
    for state in STATES:
        with app.test_request_context("/v2/enqueue", method="POST"):
            app_body, app_status = errors.from_database(_error(state))
            body, status = intake_events_v2._database(_error(state))
        # PagerDuty's senders know 202, 400, 429 and 5xx: a bad key is its 400, anything else not a
        # request error nor an outage is a 500 for them
        expected = {400: 400, 401: 400, 503: 503}.get(app_status, 500)
        assert status == expected, (state, app_status, status, body.json)
        assert body.json["status"] == ("invalid event" if expected == 400 else "error"), (state, body.json)
        if app_status == 401:
            assert body.json["errors"] == ["Invalid routing key"]
        elif app_status == 400:
            assert body.json["errors"] == [f"failed with {state}"] == [app_body.json["message"]], state


def test_a_rolled_back_transaction_is_a_retryable_503_everywhere(app):
    """The transaction-rollback class (40xxx) was an outage for the PagerDuty endpoints but an
    internal error for the rest of the API: a sender retries a 503 and gives up on neither 500."""
    with app.test_request_context("/ops/incidents", method="POST"):
        body, status = errors.from_database(_error("40002"))
    assert status == 503 and body.json["error"] == "database_unavailable"
