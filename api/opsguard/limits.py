"""Rate limits (flask-limiter). The shipped gunicorn config runs one worker process with
threads, so the default in-memory storage is shared by every request it serves. With
several processes or hosts, point RATELIMIT_STORAGE_URI at Redis (redis://host:6379)."""

from __future__ import annotations

from flask import jsonify
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

TICK = "10 per minute"
ADMIN = "10 per minute"
WRITE = "120 per minute"
READ = "300 per minute"


def too_many(exc):
    return jsonify({"ok": False, "error": "rate_limited", "message": f"rate limit exceeded: {exc.description}"}), 429
