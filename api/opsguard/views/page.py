"""The page a link in an e-mail or SMS opens: GET /p/<token> shows the incident and two buttons,
only POST acts (mail scanners and link previews follow links with GET, and must change nothing).
The token is the only credential, so: one 404 for malformed and unknown tokens alike (SQL tells
them apart from nothing), a rate limit
per client address, and headers that keep the page (and its URL) out of caches and referrers.
What a token may do is ops.api_page_get / ops.api_page_act."""

from __future__ import annotations

import psycopg
from flask import Blueprint, Response, render_template, request

from .. import limits
from ..db import call
from ..errors import status_of
from ..limits import limiter

bp = Blueprint("page", __name__)

ACTIONS = ("acknowledge", "resolve")
# no script may run, no form may post elsewhere, nothing may frame the page
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
TITLES = {400: "Not understood", 403: "Not allowed", 404: "No such page", 409: "Already resolved",
          410: "Already used", 429: "Too many tries"}


def _html(body: str, status: int = 200) -> Response:
    resp = Response(body, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _error(status: int, message: str, hint: str | None = None) -> Response:
    return _html(render_template("page_error.html", title=TITLES.get(status, "Something went wrong"),
                                 message=message, hint=hint), status)


def _answer(sql: str, *params) -> tuple[dict | None, Response | None]:
    """The SQL answer, or the HTML error page its SQLSTATE maps to (the API's one table)."""
    try:
        return call(sql, *params), None
    except psycopg.Error as exc:
        status, _code = status_of(exc)
        if status >= 500:
            raise
        diag = exc.diag
        return None, _error(status, diag.message_primary or str(exc), diag.message_hint)


@bp.get("/p/<token>")
@limiter.limit(limits.PAGE)
def show(token: str):
    view, err = _answer("SELECT ops.api_page_get(%s)", token)
    return err or _html(render_template("page.html", view=view, actions=ACTIONS))


@bp.post("/p/<token>")
@limiter.limit(limits.PAGE)
def act(token: str):
    action = request.form.get("action")
    if action not in ACTIONS:
        return _error(400, "choose acknowledge or resolve")
    result, err = _answer("SELECT ops.api_page_act(%s, %s)", token, action)
    return err or _html(render_template("page_done.html", result=result))
