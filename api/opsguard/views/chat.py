"""Slack slash commands and Block Kit buttons. Slack's request signature (v0, X-Slack-Signature
over "v0:<timestamp>:<body>", timestamp within 5 minutes) is checked with slack_sdk's
SignatureVerifier, the same way for both; the rest (who the Slack user is, whether they may, what
happens, the reply) is ops.api_slack_command and ops.api_slack_interaction."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

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


def verified_slack_request() -> str:
    """The request's Slack signature, once it is verified; 401 (503 unconfigured) otherwise."""
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
    return signature


@bp.post("/slack/commands")
@limiter.limit(limits.READ)
def slack_command():
    signature = verified_slack_request()
    form = request.form
    if form.get("ssl_check") == "1":  # Slack checking our certificate: nothing to do
        return jsonify({"ok": True, "response_type": "ephemeral", "text": ""})
    missing = [k for k in ("team_id", "user_id", "command") if not form.get(k)]
    if missing:
        raise ApiError(400, "invalid_input", f"missing form field(s): {', '.join(missing)}")
    return jsonify(call("SELECT ops.api_slack_command(%s, %s, %s, %s, %s)", form["team_id"], form["user_id"],
                        form["command"], form.get("text", ""), "slack:" + signature))


def response_url_allowed(url: str) -> bool:
    """Slack's own response URLs, or the local stand-in's (OPS_SLACK_API_BASE): the outbox posts
    there later, so a forged payload must not make it post anywhere else."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc == "hooks.slack.com":
        return True
    base = current_app.config.get("OPS_SLACK_API_BASE")
    return bool(base) and (parts.scheme, parts.netloc) == urlsplit(base)[:2]


def _block_action() -> tuple[str, str, str, str, str]:
    """team, user, action_id, value and response_url of a block_actions payload; 400 otherwise."""
    try:
        payload = json.loads(request.form.get("payload", ""))
    except ValueError:
        raise ApiError(400, "invalid_input", "the form field payload must be JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise ApiError(400, "invalid_input", "only block_actions payloads are answered here")
    actions, user = payload.get("actions"), payload.get("user")
    action = actions[0] if isinstance(actions, list) and len(actions) == 1 and isinstance(actions[0], dict) else {}
    user = user if isinstance(user, dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    fields = (team.get("id") or user.get("team_id"), user.get("id"), action.get("action_id"), action.get("value"),
              payload.get("response_url"))
    if not all(isinstance(f, str) and f for f in fields):
        raise ApiError(400, "invalid_input", "a block_actions payload names team.id, user.id, one action with "
                                             "action_id and value, and response_url")
    if not response_url_allowed(fields[4]):
        raise ApiError(400, "invalid_input", "response_url must be https://hooks.slack.com/...")
    return fields


@bp.post("/slack/interactions")
@limiter.limit(limits.READ)
def slack_interaction():
    signature = verified_slack_request()
    return jsonify(call("SELECT ops.api_slack_interaction(%s, %s, %s, %s, %s, %s)", *_block_action(),
                        "slack:" + signature))
