"""One blueprint per area. Every view: verify, call one SQL function, answer its JSON."""

from __future__ import annotations

import json

from flask import request

from ..errors import ApiError


def json_body() -> dict | None:
    """The request's JSON body; empty means none. Malformed JSON is a 400, not a guess."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
