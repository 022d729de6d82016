"""Rate limits (flask-limiter). The shipped gunicorn config runs one worker process with
threads, so the default in-memory storage is shared by every request it serves. With
several processes or hosts, RATELIMIT_STORAGE_URI=opsguard-database:// keeps the windows in the
database they already share (limit_storage.py), or redis://host:6379 in Redis.

A moving window: a fixed window lets twice the limit through across its boundary (the
end of one window and the start of the next). Signed endpoints are limited per principal,
checked after the signature is verified (the decorator sits under @signed, and
flask-limiter evaluates a decorated limit when the decorated function is called), so one
principal has one budget from any address and two principals never share one. Callers that
fail the signature check are bounded by address (FAILED_SIGNATURES, counted on 401 answers
only), so guessing signatures is throttled without charging valid callers."""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from . import limit_storage
from .auth import signature_attempted

TICK = "10 per minute"
ADMIN = "10 per minute"
WRITE = "120 per minute"
READ = "300 per minute"
INGEST = "600 per minute"
FAILED_SIGNATURES = "30 per minute"
# a page link carries its only credential: per client address, enough for a person, slow for a guesser
PAGE = "30 per minute"

# open endpoints: the failed-signature budget of an address must not lock CI out of the guard, nor
# a calendar app (whose fetchers share addresses with strangers) out of the on-call feed
OPEN_ENDPOINTS = frozenset({"guard.release_guard", "health.healthz", "metrics.metrics", "oncall.calendar"})
# open endpoints that verify a signature when one is sent (auth.signed_if_signature)
OPTIONALLY_SIGNED = frozenset({"guard.release_guard", "health.healthz"})


def _unauthorized(response: Response) -> bool:
    return response.status_code == 401


def _open_request() -> bool:
    """Exempt from the failed-signature budget: an open endpoint, but for one that verifies a
    signature when one is sent (/healthz tells a signed caller more): those attempts count like
    any other, else it would be the one place to guess signatures without limit."""
    if request.endpoint in OPTIONALLY_SIGNED:
        return not signature_attempted()
    return request.endpoint in OPEN_ENDPOINTS


limiter = Limiter(
    key_func=get_remote_address,
    strategy="moving-window",
    headers_enabled=True,
    default_limits=[],
    application_limits=[FAILED_SIGNATURES],
    application_limits_deduct_when=_unauthorized,
    application_limits_exempt_when=_open_request,
    # a storage that is away (the database during a failover, Redis) cannot count a request: the
    # request goes on and answers on its own (503 when it needs the database, a bad signature
    # 401) rather than 503 for the limit alone; the limiter reads this once, for every app
    swallow_errors=True,
)


def by_principal() -> str:
    """The key on signed endpoints; only valid under @signed (g.caller is set there)."""
    return f"principal:{g.caller.principal}"


def too_many(exc):
    return jsonify({"ok": False, "error": "rate_limited", "message": f"rate limit exceeded: {exc.description}"}), 429


def _retry_after_only_when_due(response: Response) -> Response:
    # flask-limiter adds Retry-After to every answer of a limited endpoint; it means "come
    # back later" (RFC 9110), which a 200 or a 409 is not. A 429 keeps the limiter's; a 503 of
    # a database away (a leader being elected) says when to try again (errors.database_unavailable)
    if response.status_code == 503 and g.get("retry_after"):
        response.headers["Retry-After"] = g.retry_after
    elif response.status_code != 429:
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    # Flask runs after_request hooks in reverse order of registration: registered before
    # the limiter's own hook, this one runs after it and sees the headers it added
    app.after_request(_retry_after_only_when_due)
    # the limiter is one object for every app of the process and keeps `enabled` from the last
    # app that set it: an app that says nothing means rate limits on, whatever came before
    app.config.setdefault("RATELIMIT_ENABLED", True)
    if str(app.config.get("RATELIMIT_STORAGE_URI", "")).startswith(f"{limit_storage.SCHEME}://"):
        # the windows in the database, over the app's pool: every API instance shares them
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"pool": app.extensions["opsguard_pool"]}
    limiter.init_app(app)
    app.register_error_handler(429, too_many)
