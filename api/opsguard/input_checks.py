"""Input the API refuses before any view runs, with a 4xx JSON error: what would otherwise
reach Python or libpq as something it cannot handle (a NUL byte is a client-side psycopg
error, a huge X-Timestamp overflows float arithmetic) and come back as a 5xx. gunicorn
refuses the grossest cases itself (api/opsguard/gunicorn_worker.py makes those JSON too);
these checks hold under any WSGI server and in the Flask test client."""

from __future__ import annotations

import re

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError

# gunicorn's defaults (limit_request_line, limit_request_field_size), so both layers agree
MAX_URL_BYTES = 4094
MAX_HEADER_BYTES = 8190
# unix seconds for the next few thousand years; anything longer is not a timestamp
TIMESTAMP = re.compile(r"[0-9]{1,12}")
# a header value is visible ASCII, spaces and tabs (RFC 9110 §5.5, without obs-text)
HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
SIGNATURE_HEADERS = ("x-signature", "x-timestamp", "x-slack-signature", "x-slack-request-timestamp")
# endpoints open to anyone take small bodies only (below MAX_CONTENT_LENGTH): the release guard
# stores what a webhook posts, and Flagger's payloads are a few hundred bytes (docs/release-guard.md)
BODY_LIMITS = {
    "guard.release_guard": 8 * 1024,
    # a ping's body is checked, not stored: Alertmanager's Watchdog payload is about 1-2 KiB
    # (one alert, its labels and annotations); 64 KiB leaves room for a large label set
    "intake_heartbeats.ping": 64 * 1024,
    # Alertmanager batches a whole group in one notification: 1 MiB holds ~1,500 typical alerts
    # (about 700 bytes each); bigger groups should set max_alerts on the webhook (docs/intake.md)
    "intake_alertmanager.alertmanager": 1024 * 1024,
    # PagerDuty's own limit for an Events API v2 event (512 KiB): what a sender may rely on
    "events_v2.enqueue": 512 * 1024,
    # change events share it (the same Events API); what is stored of one is capped in SQL
    "events_v2.change_enqueue": 512 * 1024,
    # a calendar app fetches the feed with a GET and no body
    "oncall.calendar": 1024,
    # the page's form posts one field (action=acknowledge)
    "page.show": 1024,
    "page.act": 1024,
    # Twilio's webhooks post a few dozen short form fields; an SMS body is at most 1600 characters
    "twilio.sms": 16 * 1024,
    "twilio.voice": 16 * 1024,
    "twilio.status": 16 * 1024,
    # a Block Kit payload carries the whole message its button was in
    "chat.slack_interaction": 64 * 1024,
}


def refuse_bad_input() -> None:
    # RAW_URI is the target as sent (gunicorn); the test client's holds no query string
    if max(len(request.environ.get("RAW_URI", "")), len(request.full_path)) > MAX_URL_BYTES:
        raise ApiError(414, "uri_too_long", f"the request line is longer than {MAX_URL_BYTES} bytes")
    for name, value in request.headers.items():
        if len(value) > MAX_HEADER_BYTES:
            raise ApiError(431, "headers_too_large", f"header {name} is longer than {MAX_HEADER_BYTES} bytes")
        if not HEADER_VALUE.fullmatch(value):
            if name.lower() in SIGNATURE_HEADERS:
                # a signature that cannot be one is a bad signature: 401 (docs/api.md, Errors)
                raise ApiError(401, "unauthorized", f"header {name} holds a control or non-ASCII character")
            raise ApiError(400, "invalid_header", f"header {name} holds a control or non-ASCII character")
    timestamp = request.headers.get("X-Timestamp")
    if timestamp is not None and not TIMESTAMP.fullmatch(timestamp):
        raise ApiError(401, "unauthorized", "X-Timestamp must be unix seconds")
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise ApiError(400, "invalid_input", "the path or query string holds a NUL byte")
    limit = BODY_LIMITS.get(request.endpoint or "")
    if limit is not None and (request.max_content_length is None or limit < request.max_content_length):
        request.max_content_length = limit  # per request (Flask 3.1), before the body is read
    body = _body_within_limit()
    if b"\x00" in body:
        raise ApiError(400, "invalid_input", "the body holds a NUL byte")


def _body_within_limit() -> bytes:
    """The body, read once and cached for the view. A chunked body has no Content-Length to
    refuse up front, and werkzeug's stream stops quietly at MAX_CONTENT_LENGTH: one more byte
    from the server's own stream tells a body cut at the limit (413) from one that fits."""
    body = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
    return body
