"""Twilio's webhooks: SMS replies (POST /twilio/sms), key presses in a call (POST /twilio/voice?t=<token>)
and delivery callbacks (POST /twilio/status). Each is verified with the twilio client's
RequestValidator: X-Twilio-Signature is an HMAC of the URL Twilio was given (app_base_url, the path
and the query string) and the form parameters, under TWILIO_AUTH_TOKEN; a bad or missing one is 403
and nothing changes. What an answer does is ops.api_twilio_sms / _voice / _status."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from twilio.request_validator import RequestValidator

from .. import limits
from ..db import call
from ..errors import ApiError
from ..limits import limiter

bp = Blueprint("twilio", __name__, url_prefix="/twilio")


def _verified_form() -> dict[str, str]:
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise ApiError(503, "twilio_not_configured", "set TWILIO_AUTH_TOKEN to accept Twilio's webhooks")
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise ApiError(403, "forbidden", "missing X-Twilio-Signature")
    # Twilio signs the public URL it was configured with, which a proxy in front may not pass on
    base = call("SELECT ops.api_public_base_url()")
    if not base:
        raise ApiError(503, "twilio_not_configured", "set app_base_url: Twilio's signature covers the public URL")
    query = request.query_string.decode("ascii", "replace")
    url = base + request.path + (f"?{query}" if query else "")
    if not RequestValidator(token).validate(url, request.form, signature):
        raise ApiError(403, "forbidden", "bad X-Twilio-Signature", hint=f"it must sign {base}{request.path}")
    return request.form


def _twiml(answer: dict) -> Response:
    return Response(answer["twiml"], mimetype="text/xml")


def _field(form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise ApiError(400, "invalid_input", f"missing form field {name}")
    return value


@bp.post("/sms")
@limiter.limit(limits.READ)
def sms():
    form = _verified_form()
    return _twiml(call("SELECT ops.api_twilio_sms(%s, %s)", _field(form, "From"), form.get("Body", "")))


@bp.post("/voice")
@limiter.limit(limits.READ)
def voice():
    form = _verified_form()
    return _twiml(call("SELECT ops.api_twilio_voice(%s, %s)", request.args.get("t", ""), form.get("Digits", "")))


@bp.post("/status")
@limiter.limit(limits.READ)
def status():
    form = _verified_form()
    sid = form.get("MessageSid") or form.get("CallSid")
    state = form.get("MessageStatus") or form.get("CallStatus")
    if not sid or not state:
        raise ApiError(400, "invalid_input",
                       "a status callback names MessageSid and MessageStatus, or CallSid and CallStatus")
    return jsonify(call("SELECT ops.api_twilio_status(%s, %s)", sid, state))
