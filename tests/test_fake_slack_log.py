"""The Slack stand-in that `make run` starts logs whom each message paged, not only its text:
a newcomer watching the log sees who was woken and through which webhook."""

from __future__ import annotations

from fake_slack import log_line
from test_escalation_paging import hooks, page_three_levels  # noqa: F401 (hooks: a fixture)


def test_the_log_line_names_the_webhook_the_mentions_and_the_unlinked_paged(conn, hooks, dispatcher):  # noqa: F811
    route, pager = page_three_levels(conn, hooks, dispatcher)

    lines = sorted((log_line(m) for m in route.messages()), key=lambda line: line["text"])
    assert [(line["to"], line["mentions"]) for line in lines] == [
        ("/services/T1/B1/route", ["UBOB"]),     # level 1: primary's bob
        ("/services/T1/B1/route", ["UCAROL"]),   # level 2: secondary's carol
        ("/services/T1/B1/route", []),           # level 3: dave has no Slack user ...
    ]
    assert any(c.endswith("paged dave") for c in lines[2]["context"]), "... so the context line names him"
    assert lines[0]["dedup_key"] and lines[0]["text"].startswith("[CRITICAL] GET /pay::slo_violation")
    [webhook] = [log_line(m) for m in pager.messages()]
    assert webhook["to"] == "/services/T9/B9/pager-secret"
