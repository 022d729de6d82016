"""One blueprint per area. Every view: verify, call one SQL function, answer its JSON."""

from __future__ import annotations

import json

from flask import request

from ..errors import ApiError

# deeper than any body the API documents; bounds what one request costs to parse and store
MAX_JSON_DEPTH = 32


def json_body(check_depth: bool = True) -> dict | None:
    """The request's JSON object; an empty body means none. Malformed JSON, a body that is
    not an object (a bare false or 42 would reach SQL as the wrong type) and JSON nested
    deeper than MAX_JSON_DEPTH are a 400, not a guess. check_depth=False only where the SQL
    function the body goes to checks the same depth itself (ops.api_alertmanager)."""
    if not request.get_data(cache=True).strip():
        return None
    value = json_value(check_depth)
    if not isinstance(value, dict):  # JSON null included: only an empty body means none
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


def json_value(check_depth: bool = True):
    """The request's JSON value of any type (None for an empty body), checked as json_body
    checks it but for the type: for endpoints that only need well-formed JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except RecursionError as exc:  # nested beyond Python's own recursion limit
        raise ApiError(400, "invalid_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if check_depth and _depth(value) > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value) -> int:
    """Nesting depth, without recursion (a recursive walk is what failed on deep input): one
    level of containers at a time, each level one comprehension (an explicit stack of (node,
    depth) pairs cost as much as json.loads itself for a 45 KB Alertmanager notification)."""
    deepest, level = 0, [value]
    while level:
        deepest += 1
        if deepest > MAX_JSON_DEPTH:
            break
        level = [child for node in level if isinstance(node, dict | list)
                 for child in (node.values() if isinstance(node, dict) else node) if isinstance(child, dict | list)]
    return deepest
