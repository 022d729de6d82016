"""Every environment variable opsguard reads, declared once: its type, default, allowed range and
meaning. Each process asks this module for the variables it reads (load), which parses and checks
them at start: a bad value stops the start with a message that names the variable, instead of
being read as something else or failing on the first request that needs it.

docs/configuration.md holds the table these declarations print, and tests/test_settings.py fails
when the two disagree or when a module reads one of these variables from os.environ itself:

    python -m opsguard.settings        (prints the table for docs/configuration.md)

Who reads what (the `read_by` of each declaration):
  api       the Flask app, create_app(): a test config passed to it overrides the environment
  gunicorn  api/gunicorn.conf.py and its worker (api/opsguard/gunicorn_worker.py)
  dispatcher, ticker, collector, migrate   the command-line processes (a --dsn option wins over DATABASE_URL)
  localpg   scripts/localpg.py: the local cluster of make run and the tests
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SettingError(RuntimeError):
    """A variable with a value it cannot have; the message names it."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # text | secret | int | float | flag | on/off | removed
    default: Any
    read_by: tuple[str, ...]
    meaning: str
    low: float | None = None
    high: float | None = None
    above: bool = False  # low itself is not allowed
    shown_default: str | None = None  # for a default computed elsewhere (OPS_BIND, OPSGUARD_PGDATA)

    def parse(self, raw: Any, who: str) -> Any:
        """The value for raw (a string from the environment, or a typed value from a test config)."""
        if self.kind in ("text", "secret"):
            return raw
        if self.kind == "removed":
            raise SettingError(f"opsguard {who}: {self.name} is {self.meaning}")
        if self.kind == "on/off":
            return _on_off(self, raw, who)
        if self.kind == "flag":
            return _flag(self, raw, who)
        return _number(self, raw, who)

    def type_text(self) -> str:
        return {"int": "whole number", "float": "number", "on/off": "on or off"}.get(self.kind, self.kind)

    def allowed(self) -> str:
        if self.kind == "on/off":
            return "`on`, `off`"
        if self.kind == "flag":
            return "on: " + ", ".join(f"`{w}`" for w in TRUE_WORDS) + "; off: " + ", ".join(f"`{w}`" for w in FALSE_WORDS)
        if self.kind == "removed":
            return "must be unset"
        if self.kind in ("int", "float"):
            return self._range()
        return "any"

    def _range(self) -> str:
        low = f"above {_num(self.low)}" if self.above else f"from {_num(self.low)}"
        if self.high is None:
            return low if self.above else f"{_num(self.low)} or more"
        return f"{low}, at most {_num(self.high)}" if self.above else f"{low} to {_num(self.high)}"

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, float):
            return f"`{_num(self.default)}`"
        return f"`{self.default}`"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _on_off(s: Setting, raw: Any, who: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in ("on", "off"):
        raise SettingError(f"opsguard {who}: {s.name} is on or off, not {raw!r}")
    return word == "on"


def _flag(s: Setting, raw: Any, who: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise SettingError(f"opsguard {who}: {s.name} is {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} "
                           f"(unset: {s.default_text()}), not {raw!r}")
    return word in TRUE_WORDS


def _number(s: Setting, raw: Any, who: str) -> float:
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
        if s.kind == "int":
            # int("2.5") fails, but a typed 2.5 converts: neither is a whole number
            value = int(raw) if isinstance(raw, str) else int(value) if value.is_integer() else None
    except (TypeError, ValueError, OverflowError):
        value = None
    fits = value is not None and math.isfinite(value) and (value > s.low if s.above else value >= s.low)
    if not fits or (s.high is not None and value > s.high):
        raise SettingError(f"opsguard {who}: {s.name} must be a {'whole ' if s.kind == 'int' else ''}number "
                           f"{s._range()}, not {raw!r}")
    return value


_API, _SERVER = ("api",), ("gunicorn",)
_DB_USERS = ("api", "dispatcher", "ticker", "collector", "migrate")
_LOCAL = ("localpg",)

SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "text", None, _DB_USERS,
            "libpq URL of the database; the API needs it, the command-line processes take `--dsn` instead"),
    Setting("OPS_HMAC_SECRET", "secret", None, _API,
            "signing key of the principal `ops-bot` (role ops_admin); the API needs it"),
    Setting("OPS_HMAC_SECRET_PREVIOUS", "secret", None, _API,
            "the previous `ops-bot` key, accepted as well while clients move to the new one"),
    Setting("OPS_HMAC_KEYS", "secret", None, _API,
            "more principals' signing keys: `name=secret,name2=secret2`"),
    # on or off only: 1 or true could be meant either way (no untimed signatures, or body-only on)
    Setting("OPS_HMAC_BODY_ONLY", "on/off", False, _API,
            "accept the older body-only signature (replayable) on tick and ack; `make run` turns it on"),
    Setting("OPS_HMAC_REQUIRE_TIMESTAMP", "removed", None, _API,
            "gone (every v1 signature carries a timestamp); unset it: body-only signatures are refused "
            "unless OPS_HMAC_BODY_ONLY=on"),
    Setting("SLACK_SIGNING_SECRET", "secret", None, _API,
            "the Slack app's signing secret; unset, `POST /chat/slack/commands` answers 503"),
    Setting("OPS_DB_ROLE", "text", "opsguard_api", _API,
            "role the API's connections switch to; empty keeps the login role"),
    Setting("OPS_DB_POOL_MAX", "int", 8, _API,
            "connections the API's pool may hold (one per gunicorn thread)", low=1, high=100),
    Setting("OPS_DB_TIMEOUT_S", "float", 2.0, _API,
            "seconds a request waits for a pooled connection before it is answered 503", low=0.1, high=60),
    Setting("OPS_DB_RECONNECT_S", "float", 2.0, _API,
            "seconds one attempt to replace a lost connection may take before its slot is freed",
            low=0.1, high=600),
    Setting("RATELIMIT_ENABLED", "flag", True, _API, "rate limits (docs/api.md, Rate limits)"),
    Setting("RATELIMIT_STORAGE_URI", "text", "memory://", _API,
            "where rate-limit counters live: `opsguard-database://` (the database) or `redis://host:6379` "
            "for several processes or hosts"),
    Setting("OPS_BENCH_ENDPOINTS", "flag", False, _API,
            "the bare baseline endpoint `make bench` measures the API against"),
    Setting("OPS_MAX_BODY_BYTES", "int", 1024 * 1024, ("api", "gunicorn"),
            "largest request body in bytes; a larger one is answered 413", low=1, high=1024 ** 3,
            shown_default="`1048576` (1 MiB)"),
    Setting("PORT", "int", 3000, _SERVER, "port the API listens on at 127.0.0.1", low=1, high=65535),
    Setting("OPS_BIND", "text", None, _SERVER,
            "gunicorn's bind address instead (`host:port`, `unix:path`)", shown_default="`127.0.0.1:$PORT`"),
    Setting("OPS_THREADS", "int", 8, _SERVER,
            "threads of the one gunicorn worker process: requests run at once", low=1, high=1000),
    Setting("OPS_MAX_CONNECTIONS", "int", 1000, _SERVER,
            "connections held at once, idle and slow ones included; more wait in the listen backlog",
            low=1, high=1_000_000),
    Setting("OPS_ACCESS_LOG", "text", "-", _SERVER, "access log file: `-` is stderr, empty is none"),
    Setting("OPS_HEADER_TIMEOUT_S", "float", 10.0, _SERVER,
            "seconds a client has to send a request's head; then 408", low=0, above=True, high=3600),
    Setting("OPS_BODY_TIMEOUT_S", "float", 30.0, _SERVER,
            "seconds after the head a client has to send the body; then 408", low=0, above=True, high=3600),
    Setting("OPS_READ_BUFFER_MB", "float", 256.0, _SERVER,
            "MiB all requests still being read may hold together; past it 503 `server_busy`",
            low=0, above=True, high=1024 ** 2),
    Setting("OPS_DISPATCH_BATCH", "int", 100, ("dispatcher",), "messages claimed at once (`--batch`)",
            low=1, high=1000),
    Setting("OPS_DISPATCH_THREADS", "int", 16, ("dispatcher",), "webhook requests at once (`--threads`)", low=1),
    Setting("OPS_DISPATCH_TIMEOUT_S", "float", 10.0, ("dispatcher",),
            "seconds a webhook may take, connect to last byte (`--timeout`)", low=0, above=True),
    Setting("OPS_DISPATCH_POLL_S", "float", 5.0, ("dispatcher",),
            "seconds between polls when no NOTIFY arrives (`--poll`)", low=0, above=True),
    Setting("OPS_DISPATCH_DB_ROLE", "text", "opsguard_dispatcher", ("dispatcher",),
            "role the dispatcher switches to after connecting; empty keeps the login role (`--db-role`)"),
    # the senders of pages (docs/notifications.md, Senders); unset, make run points them at its stand-ins
    Setting("OPS_SMTP_USER", "text", None, ("dispatcher",),
            "SMTP login for e-mail pages (settings `smtp_host`, `smtp_port`, `smtp_from`); unset: no login"),
    Setting("OPS_SMTP_PASSWORD", "secret", None, ("dispatcher",), "SMTP password of `OPS_SMTP_USER`"),
    Setting("OPS_SMTP_CA_FILE", "text", None, ("dispatcher",),
            "PEM file of the certificate authorities STARTTLS trusts instead of the system's (make run's stand-in)"),
    Setting("TWILIO_ACCOUNT_SID", "text", None, ("dispatcher",), "Twilio account SID (`AC...`) for SMS and voice pages"),
    Setting("TWILIO_AUTH_TOKEN", "secret", None, ("api", "dispatcher"),
            "Twilio auth token of that account: the dispatcher sends with it, the API verifies `X-Twilio-Signature` "
            "on `/twilio/*` with it (unset, those answer 503)"),
    Setting("TWILIO_FROM", "text", None, ("dispatcher",), "the Twilio number SMS and calls come from (E.164, `+1...`)"),
    Setting("OPS_TWILIO_API_BASE", "text", None, ("dispatcher",),
            "send Twilio REST calls here instead of `https://api.twilio.com` (a stand-in, in tests)"),
    Setting("SLACK_BOT_TOKEN", "secret", None, ("dispatcher",),
            "the Slack app's bot token (`xoxb-...`, scope `chat:write`) for direct-message pages"),
    Setting("OPS_SLACK_API_BASE", "text", None, ("api", "dispatcher"),
            "send Slack Web API calls here instead of `https://slack.com/api/` (a stand-in, in tests, `make run`); "
            "a button's `response_url` may then point at its host as well as at `https://hooks.slack.com/`"),
    Setting("OPS_COLLECT_DB_ROLE", "text", "opsguard_collector", ("collector",),
            "role the collector switches to after connecting; empty keeps the login role (`--db-role`)"),
    Setting("OPS_COLLECT_INTERVAL_S", "float", 60.0, ("collector",),
            "seconds between collections from the Prometheus sources", low=0, above=True, high=3600),
    Setting("OPS_COLLECT_TIMEOUT_S", "float", 10.0, ("collector",),
            "seconds one Prometheus query may take, connect to last byte; then the source has a problem",
            low=0, above=True, high=300),
    Setting("OPS_COLLECT_MAX_BYTES", "int", 16 * 1024 * 1024, ("collector",),
            "largest Prometheus answer read, in bytes; a larger one is the source's problem",
            low=1024, high=1024 ** 3, shown_default="`16777216` (16 MiB)"),
    Setting("OPS_COLLECT_MAX_MINUTES", "int", 60, ("collector",),
            "minutes asked for in one query; a longer back-fill takes several", low=1, high=360),
    Setting("OPSGUARD_PGPORT", "int", 54329, _LOCAL, "port of the local cluster", low=1, high=65535),
    Setting("OPSGUARD_DB", "text", "opsguard", _LOCAL, "database of the local cluster (pg_cron's)"),
    Setting("OPSGUARD_PGDATA", "text", None, _LOCAL, "data directory of the local cluster",
            shown_default="`.local/pgdata` (`/var/tmp/opsguard-*` if the `postgres` user cannot reach it)"),
    Setting("OPSGUARD_PG_BIN", "text", "/usr/lib/postgresql/15/bin", _LOCAL, "PostgreSQL 15 server binaries"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def load(reader: str, who: str, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every variable `reader` reads, parsed: from overrides (a test config), else the
    environment, else the default. Raises SettingError naming the first bad one."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values = {}
    for s in SETTINGS:
        if reader not in s.read_by:
            continue
        if s.name in overrides or s.name in environ:
            values[s.name] = s.parse(overrides[s.name] if s.name in overrides else environ[s.name], who)
        else:
            values[s.name] = s.default
    return values


def value(name: str, who: str) -> Any:
    """One variable from the environment, parsed (or its default)."""
    s = BY_NAME[name]
    return s.parse(os.environ[name], who) if name in os.environ else s.default


def default(name: str) -> Any:
    return BY_NAME[name].default


def markdown_table() -> str:
    rows = ["| variable | read by | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    rows += [f"| `{s.name}` | {', '.join(s.read_by)} | {s.type_text()} | {s.default_text()} | {s.allowed()} "
             f"| {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
