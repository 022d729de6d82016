"""The senders of pages, one module per kind of contact method (docs/notifications.md, Senders).

Each takes what ops.claim_notifications rendered for its channel and returns the result the
dispatcher reports to ops.finish_notifications: {"outcome": "sent", "provider_id": ...} or
{"outcome": "failed", "error": ...}. An error text never holds an address, a number or a secret:
a provider's own message often quotes the recipient, so only its status and code are kept.
"""

from __future__ import annotations

import time


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def sent(t0: float, provider_id: str | None = None, status: int | None = None) -> dict:
    result = {"outcome": "sent", "ms": ms_since(t0)}
    if provider_id:
        result["provider_id"] = provider_id
    if status is not None:
        result["status"] = status
    return result


def failed(t0: float, error: str, status: int | None = None, retry_after_s: float | None = None) -> dict:
    result = {"outcome": "failed", "error": error, "ms": ms_since(t0)}
    if status is not None:
        result["status"] = status
    if retry_after_s is not None:
        result["retry_after_s"] = retry_after_s
    return result
