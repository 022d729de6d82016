"""Webhook pages: the claim's JSON body POSTed to the method's URL, signed with the method's own
secret in opsguard's v1 scheme (X-Timestamp, X-Signature: v1=<hex HMAC-SHA256 of
"v1:<timestamp>:POST:<path?query>:<body>">), which a receiver checks as opsguard's own API does.
The secret itself is never sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from ..auth import v1_message


def signed_request(url: str, message: dict, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and the signature headers of one webhook page."""
    body = json.dumps(message["body"], separators=(",", ":"), sort_keys=True).encode()
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timestamp = str(int(time.time() if now is None else now))
    signature = hmac.new(message["secret"].encode(), v1_message(timestamp, "POST", target, body), hashlib.sha256).hexdigest()
    return body, {"X-Timestamp": timestamp, "X-Signature": f"v1={signature}"}
