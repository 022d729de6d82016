"""POST /ops/integrations/alertmanager over HTTP (Flask test client, real Postgres): the
Alertmanager and Grafana payloads as their docs show them open, refresh and resolve one
incident per group; a bad key is 401 and a bad payload a 400 naming the field, in our error
shape, and neither changes anything (a checksum of every ops table)."""

from __future__ import annotations

import copy
import json

import pytest
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from test_api_bad_input import checksum
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

PATH = "/ops/integrations/alertmanager"


def alert(instance: str, status: str = "firing", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": instance, "job": "node", **labels},
        "annotations": {"description": f"disk almost full on {instance}", "runbook_url": "https://runbooks/disk"},
        "startsAt": "2026-12-01T10:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=disk_free+%3C+0.05",
        "fingerprint": "1a30ba71cca2921f",
    }


def notification(status: str = "firing", alerts: list | None = None, group: str = "DiskFull") -> dict:
    """Alertmanager's webhook payload (version 4) as its docs show it."""
    return {
        "receiver": "opsguard",
        "status": status,
        "alerts": alerts if alerts is not None else [alert("db1", severity="warning"), alert("db2", severity="critical")],
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "job": "node"},
        "commonAnnotations": {"summary": "disk almost full"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity=~"critical|warning"}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
    }


GRAFANA = {  # Grafana's documented webhook contact point payload (version "1", orgId, values, title ...)
    "receiver": "My Super Webhook", "status": "firing", "orgId": 1,
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "severity": "page"},
        "annotations": {"description": "The system has high memory usage", "summary": "zone us-1"},
        "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit", "fingerprint": "c6eadffa33fcdf37",
        "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana",
        "dashboardURL": "", "panelURL": "", "values": {"B": 44.23943737541908, "C": 1},
    }],
    "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/", "version": "1", "groupKey": "{}:{}", "truncatedAlerts": 0,
    "title": "[FIRING:1]  (blue)", "state": "alerting", "message": "**Firing**\n\nLabels:\n - alertname = T2\n",
}


@pytest.fixture
def keys(conn) -> dict[str, str]:
    tokens = {name: conn.execute("SELECT ops.create_integration_key(%s, %s, 'alice', %s)", (name, kind, route))
              .fetchone()[0] for name, kind, route in
              [("am-prod", "alertmanager", "platform"), ("pd", "events_v2", None), ("am-old", "alertmanager", None)]}
    conn.execute("SELECT ops.revoke_integration_key('am-old', 'alice')")
    return tokens


@pytest.fixture
def post(app, openapi_spec):
    client = app.test_client()

    def send(body=None, *, token: str | None = None, raw: bytes | None = None, authorization: str | None = None,
             validate: bool = True):
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        resp = client.post(PATH, data=data, headers=headers)
        if validate:
            req = Request(EnvironBuilder(path=PATH, method="POST", data=data, headers=headers).get_environ())
            openapi_spec.validate_response(WerkzeugOpenAPIRequest(req), WerkzeugOpenAPIResponse(resp))
        return resp

    return send


def incidents(conn) -> list[tuple]:
    return conn.execute("SELECT id::text, status, severity, route, summary, resolved_by FROM ops.incidents "
                        "WHERE incident_key LIKE 'alertmanager:%' ORDER BY first_seen, id").fetchall()


def test_a_group_opens_one_incident_refreshes_it_and_resolves_it(post, keys, conn):
    first = post(notification(), token=keys["am-prod"])
    assert first.status_code == 200, first.json
    assert first.json["ok"] is True and len(first.json["incidents"]) == 1
    inc = first.json["incidents"][0]
    # the key's route (platform), not the job label: a route-bound key acts on its route only
    assert (inc["status"], inc["severity"], inc["route"], inc["summary"]) == ("open", "critical", "platform",
                                                                               "disk almost full")
    details = conn.execute("SELECT details FROM ops.incidents WHERE id = %s", (inc["id"],)).fetchone()[0]
    assert details["externalURL"] == "http://alertmanager:9093"
    assert [a["labels"]["instance"] for a in details["alerts"]] == ["db1", "db2"]
    assert details["alerts"][0]["generatorURL"].startswith("http://prometheus:9090/graph")
    assert details["alerts"][0]["annotations"]["runbook_url"] == "https://runbooks/disk"

    again = post(notification(alerts=[alert("db1", severity="warning")]), token=keys["am-prod"])
    assert again.status_code == 200 and again.json["incidents"][0]["id"] == inc["id"]
    assert len(incidents(conn)) == 1, "a repeated notification opens no second incident"

    resolved = post(notification("resolved", [alert("db1", "resolved"), alert("db2", "resolved")]), token=keys["am-prod"])
    assert resolved.status_code == 200
    assert resolved.json["incidents"][0]["status"] == "resolved"
    assert incidents(conn) == [(inc["id"], "resolved", "critical", "platform", "disk almost full", "am-prod")]
    nothing_open = post(notification("resolved", []), token=keys["am-prod"])
    assert nothing_open.status_code == 200 and nothing_open.json == {"ok": True, "incidents": []}


def test_a_route_bound_key_opens_incidents_on_its_route_only(post, keys, conn):
    """A key made for route platform cannot page another route's rotation by labelling its alerts
    route=billing (or service/job): the incident is on platform, the label kept in the details."""
    for labels in ({"route": "billing"}, {"service": "billing"}, {"job": "billing"}):
        body = notification(alerts=[alert("db1", severity="critical", **labels)], group="Moved" + next(iter(labels)))
        body["commonLabels"].update(labels)
        resp = post(body, token=keys["am-prod"])
        assert resp.status_code == 200, resp.json
        inc = resp.json["incidents"][0]
        assert inc["route"] == "platform", labels
        details = conn.execute("SELECT details FROM ops.incidents WHERE id = %s", (inc["id"],)).fetchone()[0]
        assert details["commonLabels"].items() >= labels.items() and details["alerts"][0]["labels"].items() >= labels.items()
    assert conn.execute("SELECT count(*) FROM ops.incidents WHERE route = 'billing'").fetchone()[0] == 0


def test_a_key_without_a_route_follows_the_labels(post, keys, conn):
    bare = conn.execute("SELECT ops.create_integration_key('am-global', 'alertmanager', 'alice')").fetchone()[0]
    resp = post(notification(alerts=[alert("db1", route="billing")]), token=bare)
    assert resp.status_code == 200 and resp.json["incidents"][0]["route"] == "billing", resp.json


def test_100_kb_of_annotations_open_the_incident_with_a_truncation_marker(post, keys, conn):
    """Alertmanager does not retry a 4xx: a notification too big for the details must still page."""
    body = notification()
    body["commonAnnotations"] = {"summary": "disk almost full", "dump": "x" * 100_000}
    resp = post(body, token=keys["am-prod"])
    assert resp.status_code == 200, resp.json
    inc = resp.json["incidents"][0]
    assert (inc["status"], inc["severity"], inc["summary"]) == ("open", "critical", "disk almost full")
    details, size = conn.execute("SELECT details, octet_length(details::text) FROM ops.incidents WHERE id = %s",
                                 (inc["id"],)).fetchone()
    assert details["truncated"] == [{"field": "commonAnnotations", "bytes": 100_002}]
    assert details["commonAnnotations"] == {"summary": "disk almost full"} and size <= 64 * 1024
    assert [a["labels"]["instance"] for a in details["alerts"]] == ["db1", "db2"]


def test_grafana_payload_is_accepted(post, keys, conn):
    resp = post(GRAFANA, token=keys["am-prod"])
    assert resp.status_code == 200, resp.json
    inc = resp.json["incidents"][0]
    assert (inc["severity"], inc["route"], inc["summary"]) == ("critical", "platform", "High memory usage")
    details = conn.execute("SELECT details FROM ops.incidents WHERE id = %s", (inc["id"],)).fetchone()[0]
    assert details["source"] == "grafana" and details["alerts"][0]["values"] == {"B": 44.23943737541908, "C": 1}


def test_the_bearer_scheme_is_case_insensitive(post, keys):
    assert post(notification(), authorization=f"bearer {keys['am-prod']}").status_code == 200


@pytest.mark.parametrize("how", ["none", "basic", "unknown", "revoked", "wrong_kind", "empty", "token_only"])
def test_a_bad_key_is_401_and_changes_nothing(post, keys, conn, how):
    authorization = {
        "none": None, "basic": f"Basic {keys['am-prod']}", "unknown": "Bearer ogk_" + "0" * 64,
        "revoked": f"Bearer {keys['am-old']}", "wrong_kind": f"Bearer {keys['pd']}", "empty": "Bearer ",
        "token_only": keys["am-prod"],
    }[how]
    before = checksum(conn)
    resp = post(notification(), authorization=authorization)
    assert resp.status_code == 401, resp.json
    assert resp.json["ok"] is False and resp.json["error"] == "unauthorized"
    assert checksum(conn) == before


def _set(path: list, value):
    def change(body: dict) -> dict:
        target = body
        for step in path[:-1]:
            target = target[step]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return body
    return change


DELETE = object()
BAD_PAYLOADS = {  # id: (change, the field the 400 names)
    "no_groupKey": (_set(["groupKey"], DELETE), "groupKey"),
    "groupKey_number": (_set(["groupKey"], 5), "groupKey"),
    "groupKey_blank": (_set(["groupKey"], " "), "groupKey"),
    "no_version": (_set(["version"], DELETE), "version"),
    "version_3": (_set(["version"], "3"), "version"),
    "version_number": (_set(["version"], 4), "version"),
    "version_1_without_orgId": (_set(["version"], "1"), "version"),
    "status_unknown": (_set(["status"], "burning"), "status"),
    "status_list": (_set(["status"], ["firing"]), "status"),
    "alerts_object": (_set(["alerts"], {}), "alerts"),
    "alerts_missing": (_set(["alerts"], DELETE), "alerts"),
    "receiver_number": (_set(["receiver"], 1), "receiver"),
    "externalURL_object": (_set(["externalURL"], {}), "externalURL"),
    "truncatedAlerts_string": (_set(["truncatedAlerts"], "0"), "truncatedAlerts"),
    "orgId_string": (_set(["orgId"], "1"), "orgId"),
    "groupLabels_list": (_set(["groupLabels"], []), "groupLabels"),
    "commonLabels_number_value": (_set(["commonLabels", "job"], 1), "commonLabels"),
    "commonAnnotations_string": (_set(["commonAnnotations"], "x"), "commonAnnotations"),
    "alert_not_object": (_set(["alerts", 1], "x"), "alerts[1]"),
    "alert_status_missing": (_set(["alerts", 1, "status"], DELETE), "alerts[1].status"),
    "alert_labels_missing": (_set(["alerts", 0, "labels"], DELETE), "alerts[0].labels"),
    "alert_label_number": (_set(["alerts", 1, "labels", "severity"], 2), "alerts[1].labels"),
    # a list of strings is not a string (0039: jsonpath's lax mode looked inside lists)
    "alert_label_list": (_set(["alerts", 1, "labels", "severity"], ["critical"]), "alerts[1].labels"),
    "alert_label_empty_list": (_set(["alerts", 0, "labels", "job"], []), "alerts[0].labels"),
    "alert_annotation_list": (_set(["alerts", 0, "annotations", "description"], ["a", "b"]), "alerts[0].annotations"),
    "commonLabels_list_value": (_set(["commonLabels", "job"], ["node"]), "commonLabels"),
    "alert_annotations_list": (_set(["alerts", 0, "annotations"], ["a"]), "alerts[0].annotations"),
    "alert_startsAt_number": (_set(["alerts", 0, "startsAt"], 0), "alerts[0].startsAt"),
    "alert_endsAt_bool": (_set(["alerts", 0, "endsAt"], True), "alerts[0].endsAt"),
    "alert_generatorURL_object": (_set(["alerts", 1, "generatorURL"], {}), "alerts[1].generatorURL"),
    "alert_fingerprint_number": (_set(["alerts", 0, "fingerprint"], 7), "alerts[0].fingerprint"),
    "alert_values_string": (_set(["alerts", 0, "values"], "44"), "alerts[0].values"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_a_malformed_payload_is_400_naming_the_field_and_changes_nothing(post, keys, conn, case):
    change, field = BAD_PAYLOADS[case]
    post(notification(group="Before"), token=keys["am-prod"])  # something there that must stay as it is
    before = checksum(conn)
    resp = post(change(copy.deepcopy(notification())), token=keys["am-prod"], validate=False)
    assert resp.status_code == 400, resp.json
    assert resp.json["ok"] is False and resp.json["error"] == "invalid_input"
    assert resp.json["message"].startswith(field + " "), resp.json
    assert checksum(conn) == before


def test_32_levels_are_accepted_and_33_are_400_and_change_nothing(post, keys, conn):
    """The API's depth limit holds here too, checked in ops.api_alertmanager (0040): the body,
    its alerts, an alert and Grafana's values are 4 levels, the values nest the rest."""
    def nested(levels: int) -> dict:
        values: dict = {"B": 1}
        for _ in range(levels - 4):
            values = {"x": values}
        body = notification(group=f"Deep{levels}")
        body["alerts"][0]["values"] = values
        return body

    assert post(nested(32), token=keys["am-prod"]).status_code == 200
    before = checksum(conn)
    resp = post(nested(33), token=keys["am-prod"], validate=False)
    assert resp.status_code == 400, resp.json
    assert resp.json["ok"] is False and resp.json["message"] == "the body is nested deeper than 32 levels"
    assert checksum(conn) == before


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null", b"{not json", b"[" * 100 + b"]" * 100],
                         ids=["array", "string", "number", "null", "broken", "deep"])
def test_a_body_that_is_not_an_object_is_400_and_changes_nothing(post, keys, conn, raw):
    before = checksum(conn)
    resp = post(raw=raw, token=keys["am-prod"], validate=False)
    assert resp.status_code == 400 and resp.json["ok"] is False, resp.json
    assert checksum(conn) == before


def test_10k_alerts_over_the_body_limit_are_413_and_change_nothing(post, keys, conn):
    body = notification(alerts=[alert(f"host-{i:05d}") for i in range(10_000)])
    raw = json.dumps(body).encode()
    assert len(raw) > 1024 * 1024
    before = checksum(conn)
    resp = post(raw=raw, token=keys["am-prod"], validate=False)
    assert resp.status_code == 413 and resp.json["error"] == "payload_too_large"
    assert checksum(conn) == before


def test_10k_alerts_within_the_limit_make_one_small_incident(post, keys, conn):
    compact = [{"status": "firing", "labels": {"alertname": "Storm", "i": str(i)}} for i in range(10_000)]
    raw = json.dumps(notification(alerts=compact, group="Storm")).encode()
    assert len(raw) <= 1024 * 1024
    resp = post(raw=raw, token=keys["am-prod"])
    assert resp.status_code == 200, resp.json
    size, total, kept = conn.execute(
        "SELECT octet_length(details::text), details ->> 'alertsTotal', jsonb_array_length(details -> 'alerts') "
        "FROM ops.incidents WHERE id = %s", (resp.json["incidents"][0]["id"],)).fetchone()
    assert (total, kept) == ("10000", 20)
    assert size < 16 * 1024


def test_non_ascii_labels_are_kept_and_a_lone_surrogate_is_400(post, keys, conn):
    ok = post(notification(alerts=[alert("db1", zone="zürich ☃")]), token=keys["am-prod"])
    assert ok.status_code == 200, ok.json
    details = conn.execute("SELECT details FROM ops.incidents WHERE id = %s", (ok.json["incidents"][0]["id"],)).fetchone()[0]
    assert details["alerts"][0]["labels"]["zone"] == "zürich ☃"
    before = checksum(conn)
    bad = post(raw=json.dumps(notification(group="Surrogate")).replace("Surrogate", "\\ud800").encode(),
               token=keys["am-prod"], validate=False)
    assert bad.status_code == 400 and bad.json["ok"] is False, bad.json
    assert checksum(conn) == before
