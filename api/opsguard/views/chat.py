"""Slack slash commands. Slack's request signature (v0, X-Slack-Signature over
"v0:<timestamp>:<body>", timestamp within 5 minutes) is checked with slack_sdk's
SignatureVerifier; the rest (who the Slack user is, whether they may, what happens, the
reply) is ops.api_slack_command."""

from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, jsonify, request

from .. import limits
from ..db import call
from ..errors import ApiError
from ..limits import limiter

bp = Blueprint("chat", __name__, url_prefix="/chat")

SLACK_WINDOW_S = 300
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@bp.post("/slack/commands")
@limiter.limit(limits.READ)
def slack_command():
    verifier = current_app.extensions.get("slack_verifier")
    if verifier is None:
        raise ApiError(503, "slack_not_configured", "set SLACK_SIGNING_SECRET to accept Slack commands")
    body = request.get_data(cache=True)
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        raise ApiError(401, "unauthorized", "missing X-Slack-Signature or X-Slack-Request-Timestamp")
    # the verifier refuses stale timestamps too; this only names the reason. The shape first:
    # int() raises on a header of 5,000 digits (Python's limit on digits), and isdigit() takes "²"
    if not UNIX_SECONDS.fullmatch(timestamp) or abs(time.time() - int(timestamp)) > SLACK_WINDOW_S:
        raise ApiError(401, "unauthorized", "X-Slack-Request-Timestamp is not within 5 minutes of now")
    # slack_sdk's verifier decodes the body as UTF-8 before it computes the MAC, and raises on
    # other bytes. Slack sends UTF-8 only: other bytes are a body Slack did not sign, so a 401 like
    # any bad signature (counted against the address's failed signatures), never an exception
    if not _utf8(body):
        raise ApiError(401, "unauthorized", "bad Slack signature: the body is not UTF-8")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise ApiError(401, "unauthorized", "bad Slack signature")
    form = request.form
    if form.get("ssl_check") == "1":  # Slack checking our certificate: nothing to do
        return jsonify({"ok": True, "response_type": "ephemeral", "text": ""})
    missing = [k for k in ("team_id", "user_id", "command") if not form.get(k)]
    if missing:
        raise ApiError(400, "invalid_input", f"missing form field(s): {', '.join(missing)}")
    return jsonify(call("SELECT ops.api_slack_command(%s, %s, %s, %s, %s)", form["team_id"], form["user_id"],
                        form["command"], form.get("text", ""), "slack:" + signature))
