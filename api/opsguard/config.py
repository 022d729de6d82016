"""The boot-time configuration check every opsguard process runs: ops.config_problems()
(webhooks https or loopback http, app_base_url, UTC, a dispatcher's lease). A process
with blocking problems does not start; the message names each setting. Paging gaps (a
principal with no linked Slack user, ...) are rows too, with blocking false: /healthz
warns about them, and nothing refuses to start over them. Environment variables are
checked before this, by settings.py."""

from __future__ import annotations

import psycopg


def bad_configuration(conn: psycopg.Connection, who: str, dispatch_timeout_s: float | None = None) -> str | None:
    """None when all is well, else the message to stop with."""
    rows = conn.execute("SELECT setting, problem FROM ops.config_problems(%s) WHERE blocking",
                        (dispatch_timeout_s,)).fetchall()
    if not rows:
        return None
    return f"opsguard {who}: bad configuration: " + "; ".join(f"setting {name}: {problem}" for name, problem in rows)
