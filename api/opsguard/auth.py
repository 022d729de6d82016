"""HMAC request signatures (docs/api.md, Signatures). One verifier for every signed endpoint.

v1, what every client signs:

    X-Timestamp: <unix seconds>
    X-Signature: v1=<lowercase hex HMAC-SHA256(secret, "v1:<timestamp>:<METHOD>:<path>:<body>")>

The method, the path with its query string exactly as sent, and the time are inside the MAC,
so a signature is good for one request only: not for another endpoint, incident, query or
method, and not after ±300 s. A write (any method but GET) is accepted once: its replay key
goes to the database (ops._api_begin), which refuses a key it has seen. A GET may repeat.

body-only, the older scheme: X-Signature = hex HMAC(secret, raw body). It binds neither
endpoint, incident, actor nor time: one captured request works again forever. So it is off
unless OPS_HMAC_BODY_ONLY=on (make run turns it on for the smoke test, which signs its tick
that way), and then accepted only where older scripts use it: POST /ops/escalation/tick and
POST /ops/incidents/<id>/ack, over a non-empty body, without X-Ops-Actor (the header is outside
the MAC: anyone could put another name on a captured ack); /healthz warns signed callers.

Each key maps to a principal; who may do what is decided in SQL (ops.authorize), not here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g, request

from .errors import ApiError

TIMESTAMP_WINDOW_S = 300
V1_HINT = ('sign v1: X-Timestamp: <unix seconds> and X-Signature: v1=<hex HMAC-SHA256 of '
           '"v1:<timestamp>:<METHOD>:<path?query>:<body>">, see docs/api.md')
# where older scripts sign the body alone; nowhere else
BODY_ONLY_ROUTES = re.compile(r"/ops/escalation/tick|/ops/incidents/[^/]+/ack")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Caller:
    principal: str
    actor: str | None
    replay_key: str | None


def parse_keys(config: dict) -> list[tuple[str, bytes]]:
    """(principal, secret) pairs: OPS_HMAC_SECRET and OPS_HMAC_SECRET_PREVIOUS (rotation) are
    ops-bot; OPS_HMAC_KEYS adds others as "name=secret,name2=secret2"."""
    keys = [("ops-bot", config[k].encode()) for k in ("OPS_HMAC_SECRET", "OPS_HMAC_SECRET_PREVIOUS") if config.get(k)]
    for item in filter(None, (config.get("OPS_HMAC_KEYS") or "").split(",")):
        name, _, secret = item.partition("=")
        if not name.strip() or not secret.strip():
            raise ValueError("OPS_HMAC_KEYS entries are name=secret")
        keys.append((name.strip(), secret.strip().encode()))
    return keys


def body_only_accepted(config: dict) -> bool:
    """The body-only scheme is accepted only while OPS_HMAC_BODY_ONLY is on (settings.py parses it)."""
    return config.get("OPS_HMAC_BODY_ONLY") is True


def request_target() -> str:
    """The path and query exactly as the client sent them: gunicorn's RAW_URI, werkzeug's
    REQUEST_URI. Werkzeug's test client leaves the query out of both, so it is added back
    when the URI carries none (a real server's URI always has its "?")."""
    env = request.environ
    uri = env.get("RAW_URI") or env.get("REQUEST_URI") or request.path
    query = env.get("QUERY_STRING", "")
    if query and "?" not in uri:
        uri = f"{uri}?{query}"
    return uri


def v1_message(timestamp: str, method: str, target: str, body: bytes) -> bytes:
    """What a v1 signature covers; clients build the same bytes."""
    return b"v1:%s:%s:%s:" % (timestamp.encode(), method.upper().encode(), target.encode("latin-1", "replace")) + body


def _sign(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _principal(message: bytes, hexdigest: str) -> str | None:
    principal = None
    # compare against every key, always, in constant time: timing says nothing about which matched
    for name, secret in current_app.config["HMAC_KEYS"]:
        if hmac.compare_digest(_sign(secret, message), hexdigest) and principal is None:
            principal = name
    return principal


def _refuse(message: str, hint: str | None = None) -> ApiError:
    return ApiError(401, "unauthorized", message, hint=hint)


def verify(method: str, target: str, body: bytes, signature: str | None, timestamp: str | None) -> Caller:
    """The caller a signature proves, or a 401 ApiError. Header values are untrusted text:
    anything that is not the expected ASCII shape is a 401, never an exception."""
    if not signature:
        raise _refuse("missing X-Signature", V1_HINT)
    actor = request.headers.get("X-Ops-Actor") or None
    if signature.startswith("v1="):
        hexdigest = signature[3:]
        if timestamp is None:
            raise _refuse("a v1 signature needs X-Timestamp", V1_HINT)
        if not _UNIX_SECONDS.fullmatch(timestamp) or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise _refuse(f"X-Timestamp is not within {TIMESTAMP_WINDOW_S} s of the server's clock",
                          "send the current unix time in seconds; check the client's clock")
        if not _HEX64.fullmatch(hexdigest):
            raise _refuse("bad signature", V1_HINT)
        principal = _principal(v1_message(timestamp, method, target, body), hexdigest)
        if principal is None:
            raise _refuse("bad signature", V1_HINT)
        # a write is good once: the database refuses a replay key it has seen within the window
        replay_key = None if method == "GET" else hashlib.sha256(b"v1=" + hexdigest.encode()).hexdigest()
        return Caller(principal=principal, actor=actor, replay_key=replay_key)
    if timestamp is not None:
        raise _refuse("X-Timestamp goes with a v1 signature only (the <timestamp>.<body> scheme is gone)", V1_HINT)
    if not _HEX64.fullmatch(signature):
        raise _refuse("bad signature", V1_HINT)
    if not body_only_accepted(current_app.config):
        raise _refuse("body-only signatures are off on this server (OPS_HMAC_BODY_ONLY)", V1_HINT)
    if not (method == "POST" and body and BODY_ONLY_ROUTES.fullmatch(request.path)):
        raise _refuse("a body-only signature is not accepted here", V1_HINT)
    if "X-Ops-Actor" in request.headers:
        raise _refuse("a body-only signature cannot name an X-Ops-Actor: the header is not signed", V1_HINT)
    principal = _principal(body, signature)
    if principal is None:
        raise _refuse("bad signature", V1_HINT)
    return Caller(principal=principal, actor=actor, replay_key=None)


def signed(view: Callable) -> Callable:
    """The view runs only for a valid signature; g.caller says who signed and for whom."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.caller = _verify_request()
        return view(*args, **kwargs)

    return wrapper


def signed_if_signature(view: Callable) -> Callable:
    """For an endpoint open to anyone that tells a signed caller more (/healthz): a request with
    X-Signature or X-Timestamp is verified as on any signed endpoint (a bad one is a 401, counted
    against the address's failed signatures); g.caller is None for a request with neither."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.caller = _verify_request() if signature_attempted() else None
        return view(*args, **kwargs)

    return wrapper


def signature_attempted() -> bool:
    return "X-Signature" in request.headers or "X-Timestamp" in request.headers


def _verify_request() -> Caller:
    return verify(request.method, request_target(), request.get_data(cache=True),
                  request.headers.get("X-Signature"), request.headers.get("X-Timestamp"))


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>` (integration keys: senders that cannot sign
    bodies; the scheme is case-insensitive, RFC 9110). None for anything else, which SQL refuses
    like an unknown key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None
