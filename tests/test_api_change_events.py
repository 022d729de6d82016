"""POST /v2/change/enqueue: PagerDuty's change events over HTTP. The answers in PagerDuty's shapes,
every bad input (keys that are no keys, malformed or oversized bodies, wrong types) refused the way
/v2/enqueue refuses it and changing nothing (a checksum of every ops table), what is stored capped,
the change shown where a responder looks (GET /ops/incidents, GET /ops/release-guard), and
PagerDuty's own client library (`send_change_event`, `submit`) against a real gunicorn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pagerduty
import pytest
from test_api_bad_input import DEEP_OBJECT, checksum
from test_api_intake_events_v2 import assert_invalid
from test_intake_events_v2_client import base, events_client, tls  # noqa: F401 - fixtures: gunicorn over TLS

ROOT = Path(__file__).resolve().parents[1]
PATH = "/v2/change/enqueue"
PROCESSED = {"status": "success", "message": "Change event processed"}


@pytest.fixture
def keys(conn) -> dict[str, str]:
    row = conn.execute(
        "SELECT ops.create_integration_key('ci', 'events_v2', 'alice'),"
        " ops.create_integration_key('ci-checkout', 'events_v2', 'alice', 'checkout'),"
        " ops.create_integration_key('ci-old', 'events_v2', 'alice'),"
        " ops.create_integration_key('am', 'alertmanager', 'alice')").fetchone()
    conn.execute("SELECT ops.revoke_integration_key('ci-old', 'alice')")
    return dict(zip(("ci", "routed", "revoked", "alertmanager"), row, strict=True))


def change(key, **fields) -> dict:
    body = {"routing_key": key, "payload": {"summary": "deploy search v42", "source": "GET /search"}}
    body.update(fields)
    return body


def post(api, body=None, *, raw: bytes | None = None, validate: bool = True):
    return api.post(PATH, body, raw=raw, secret=None, validate=validate)


def stored(conn) -> list[tuple]:
    return conn.execute("SELECT route, summary, source, key_name, details, links FROM ops.changes ORDER BY id").fetchall()


@pytest.fixture
def unchanged(conn, keys):
    """No ops table changes during the test (the keys and one change are made before)."""
    conn.execute("SELECT ops.api_change_event(%s::jsonb)", (json.dumps(change(keys["ci"])),))
    before = checksum(conn)
    yield
    after = checksum(conn)
    assert {t for t in before if before[t] != after[t]} == set()


def test_a_change_event_is_202_in_pagerdutys_shape_and_stored(api, conn, keys):
    body = change(keys["ci"], payload={"summary": "deploy search v42", "source": "GET /search",
                                       "timestamp": "2026-12-01T08:00:00.315+0000",
                                       "custom_details": {"build": "42", "author": "alice"}},
                  links=[{"href": "https://ci.example/42", "text": "build 42"}])
    resp = post(api, body)
    assert (resp.status_code, resp.mimetype, resp.json) == (202, "application/json", PROCESSED)
    assert stored(conn) == [("GET /search", "deploy search v42", "GET /search", "ci",
                             {"build": "42", "author": "alice"}, [{"href": "https://ci.example/42", "text": "build 42"}])]
    assert conn.execute("SELECT occurred_at FROM ops.changes").fetchone()[0] == datetime(2026, 12, 1, 8, 0, 0, 315000, UTC)


def test_a_key_with_a_route_acts_only_on_it(api, conn, keys):
    body = change(keys["routed"], payload={"summary": "flag on", "source": "GET /search",
                                           "custom_details": {"route": "GET /admin"}})
    assert post(api, body).status_code == 202
    assert stored(conn)[0][:1] == ("checkout",)


def test_a_key_without_a_route_takes_custom_details_route_then_source(api, conn, keys):
    post(api, change(keys["ci"], payload={"summary": "a", "source": "GET /a", "custom_details": {"route": "GET /b"}}))
    post(api, change(keys["ci"], payload={"summary": "c", "source": "GET /c"}))
    assert [r[0] for r in stored(conn)] == ["GET /b", "GET /c"]


@pytest.mark.parametrize("which", ["unknown", "revoked", "alertmanager", "missing", "number"])
def test_a_bad_routing_key_is_refused_as_enqueue_refuses_it(api, keys, unchanged, which):
    key = {"unknown": "ogk_" + "0" * 64, "revoked": keys["revoked"], "alertmanager": keys["alertmanager"],
           "missing": None, "number": 12345}[which]
    body = change(key)
    if which == "missing":
        del body["routing_key"]
    assert_invalid(post(api, body, validate=False), errors=["Invalid routing key"])


@pytest.mark.parametrize(("fields", "error"), [
    ({"payload": None}, "'payload' is required: an object with summary"),
    ({"payload": {"source": "GET /x"}}, "'payload.summary' is required"),
    ({"payload": {"summary": " ", "source": "GET /x"}}, "'payload.summary' must not be blank"),
    ({"payload": {"summary": "s" * 1025, "source": "GET /x"}}, "'payload.summary' is longer than 1024 characters"),
    ({"payload": {"summary": "s", "source": "x" * 256}}, "'payload.source' is longer than 255 characters"),
    ({"payload": {"summary": "s", "source": "GET /x", "timestamp": "yesterday"}},
     "'payload.timestamp' must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z"),
    ({"payload": {"summary": "s", "source": "GET /x", "custom_details": "build 42"}},
     "'payload.custom_details' must be an object"),
    ({"payload": {"summary": "s"}},
     "a change needs a route: the key's, else 'payload.custom_details.route', else 'payload.source'"),
    ({"payload": {"summary": "s", "custom_details": {"route": ["GET /x"]}}},
     "'payload.custom_details.route' must be a string, not array"),
    ({"links": [{"text": "no href"}]}, "'links' must be a list of {\"href\": string, \"text\": string}"),
    ({"links": [{"href": "https://x/" + "y" * 2048}]}, "'links': an href is at most 2048 characters, a text at most 1024"),
])
def test_an_invalid_change_event_is_400_and_changes_nothing(api, keys, unchanged, fields, error):
    # validate=False: the request breaks docs/openapi.yaml on purpose
    assert_invalid(post(api, change(keys["ci"], **fields), validate=False), errors=[error])


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"null", b'{"routing_key": "a\\u0000b"}', b'{"a": "\x00"}',
                                 DEEP_OBJECT],
                         ids=["empty", "truncated", "array", "null", "escaped-nul", "nul-byte", "nested-10000"])
def test_malformed_bodies_are_invalid_events(api, keys, unchanged, raw):
    assert_invalid(post(api, raw=raw, validate=False))


def test_a_body_over_512_kib_is_413_in_pagerdutys_shape(api, keys, unchanged):
    big = json.dumps(change(keys["ci"], payload={"summary": "s", "source": "GET /x",
                                                 "custom_details": {"log": "x" * (512 * 1024)}})).encode()
    assert_invalid(post(api, raw=big, validate=False), status=413)


def test_what_one_event_stores_is_capped(api, conn, keys):
    body = change(keys["ci"], payload={"summary": "s", "source": "GET /x",
                                       "custom_details": {f"k{i:03}": "x" * 1000 for i in range(400)}},
                  links=[{"href": f"https://ci.example/{i}/" + "y" * 500, "text": "t"} for i in range(50)])
    assert len(json.dumps(body)) > 400_000
    assert post(api, body).status_code == 202
    details, links, truncated = conn.execute(
        "SELECT octet_length(details::text), jsonb_array_length(links), truncated FROM ops.changes").fetchone()
    assert details <= 16 * 1024 and 1 <= links <= 10 and truncated


def _sql_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_incident_and_the_guard_show_the_change(api, conn, keys):
    deployed = datetime.now(UTC) - timedelta(minutes=2)
    body = change(keys["ci"], payload={"summary": "deploy pay v7", "source": "GET /pay", "timestamp": _sql_time(deployed)},
                  links=[{"href": "https://ci.example/7", "text": "build 7"}])
    assert post(api, body).status_code == 202
    post(api, change(keys["ci"], payload={"summary": "elsewhere", "source": "GET /other"}))
    incident = str(conn.execute("SELECT id FROM ops.trigger_incident('GET /pay::error_rate_critical', 'critical')")
                   .fetchone()[0])

    listed = api.get("/ops/incidents", query={"route": "GET /pay"})
    assert listed.status_code == 200
    [shown] = [i for i in listed.json["incidents"] if i["id"] == incident]
    assert [(c["summary"], c["source"], c["integrationKey"], c["links"]) for c in shown["changes"]] == [
        ("deploy pay v7", "GET /pay", "ci", [{"href": "https://ci.example/7", "text": "build 7"}])]

    at = datetime.now(UTC).isoformat()
    samples = [{"route": "GET /pay", "status": 500, "latency_ms": 12, "at": at} for _ in range(8)]
    assert api.post("/ops/metrics/requests", samples).status_code == 200
    guard = api.get("/ops/release-guard", secret=None)
    assert guard.status_code == 409
    [item] = [f for f in guard.json["failing"] if f["key"] == "GET /pay::error_rate_critical"]
    assert [(c["summary"], c["source"]) for c in item["evidence"]["changes"]] == [("deploy pay v7", "GET /pay")]
    assert item["evidence"]["err_rate_1m"] == 100


def _doc_client_block() -> str:
    """docs/intake.md's Python block for change events (the one after its "tested: change client" marker)."""
    doc = (ROOT / "docs" / "intake.md").read_text()
    after = doc[doc.index("<!-- tested: change client -->"):]
    return after[after.index("```python\n") + len("```python\n"):after.index("\n```", after.index("```python"))]


def test_the_pagerduty_client_sends_change_events_as_the_docs_show(base, conn):  # noqa: F811
    token = conn.execute("SELECT ops.create_integration_key('pd-lib', 'events_v2', 'alice')").fetchone()[0]
    url, trust = base
    block = _doc_client_block()
    assert 'base_url="https://opsguard.example")' in block and '"ogk_..."' in block
    # the block verbatim, but for the key, the URL and trust in this run's throwaway certificate
    exec(block.replace('"ogk_..."', repr(token))  # noqa: S102 - our own documentation
         .replace('base_url="https://opsguard.example")', "base_url=URL, verify=TRUST)"), {"URL": url, "TRUST": trust})
    assert stored(conn) == [
        ("GET /search", "deploy search v42", "GET /search", "pd-lib", {"build": "42"},
         [{"href": "https://ci.example/builds/42", "text": "build 42"}]),
        ("GET /search", "config push", "GET /search", "pd-lib", {"by": "alice"}, []),
    ]
    assert conn.execute("SELECT min(occurred_at) FROM ops.changes").fetchone()[0] == datetime(2026, 12, 1, 8, 42, 58,
                                                                                              tzinfo=UTC)


def test_the_pagerduty_client_sends_pagerdutys_own_example(base, conn):  # noqa: F811
    token = conn.execute("SELECT ops.create_integration_key('pd-lib', 'events_v2', 'alice')").fetchone()[0]
    # PagerDuty's documented example body (its timestamp with a +0000 offset)
    events_client(base, token).send_change_event(
        payload={"summary": "Build Success: Increase snapshot create timeout to 30 seconds",
                 "timestamp": "2020-07-17T08:42:58.315+0000", "source": "acme-build-pipeline-tool-default-i-9999",
                 "custom_details": {"build_state": "passed", "build_number": "2", "run_time": "1236s"}},
        links=[{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}])
    assert [r[:4] for r in stored(conn)] == [
        ("acme-build-pipeline-tool-default-i-9999", "Build Success: Increase snapshot create timeout to 30 seconds",
         "acme-build-pipeline-tool-default-i-9999", "pd-lib")]


def test_a_bad_key_or_event_through_the_client_raises_and_changes_nothing(base, conn):  # noqa: F811
    token = conn.execute("SELECT ops.create_integration_key('pd-lib', 'events_v2', 'alice')").fetchone()[0]
    for client, payload, errors in (
            (events_client(base, "ogk_" + "0" * 64), {"summary": "x", "source": "GET /x"}, ["Invalid routing key"]),
            (events_client(base, token), {"summary": "x" * 1025, "source": "GET /x"},
             ["'payload.summary' is longer than 1024 characters"])):
        with pytest.raises(pagerduty.HttpError) as raised:
            client.send_change_event(payload=payload)
        assert raised.value.response.status_code == 400
        assert raised.value.response.json() == {"status": "invalid event", "message": "Event object is invalid",
                                                "errors": errors}
    assert stored(conn) == []
