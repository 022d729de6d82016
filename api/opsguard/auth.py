"""HMAC request signatures, exactly as the seeds compute them:

    X-Signature = lowercase hex HMAC-SHA256(secret, raw body)
    printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$OPS_HMAC_SECRET" -binary | xxd -p -c 256

With X-Timestamp (unix seconds) the signature covers "<timestamp>.<body>", must be within
±300 s, and is accepted once (the database remembers it). OPS_HMAC_REQUIRE_TIMESTAMP=1
refuses requests without one. Each key maps to a principal; who may do what is decided
in SQL (ops.authorize), not here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g, request

from .errors import ApiError

TIMESTAMP_WINDOW_S = 300


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


def _sign(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, timestamp: str | None) -> Caller:
    config = current_app.config
    if not signature:
        raise ApiError(401, "unauthorized", "missing X-Signature")
    message = body
    if timestamp is not None:
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise ApiError(401, "unauthorized", "X-Timestamp is not within 300 s of now")
        message = timestamp.encode() + b"." + body
    elif config.get("OPS_HMAC_REQUIRE_TIMESTAMP"):
        raise ApiError(401, "unauthorized", "X-Timestamp is required")
    principal = None
    # compare against every key, always, in constant time: timing says nothing about which matched
    for name, secret in config["HMAC_KEYS"]:
        if hmac.compare_digest(_sign(secret, message), signature) and principal is None:
            principal = name
    if principal is None:
        raise ApiError(401, "unauthorized", "bad signature")
    return Caller(principal=principal, actor=request.headers.get("X-Ops-Actor") or None,
                  replay_key=_sign(b"replay", message + signature.encode()) if timestamp is not None else None)


def signed(view: Callable) -> Callable:
    """The view runs only for a valid signature; g.caller says who signed and for whom."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.caller = verify(request.get_data(cache=True), request.headers.get("X-Signature"),
                          request.headers.get("X-Timestamp"))
        return view(*args, **kwargs)

    return wrapper
