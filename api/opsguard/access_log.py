"""Logs without secrets. A calendar feed URL carries its token in the query string
(?token=ogf_..., since calendar apps cannot send headers), a page's link its answer token in
the path (/p/<token>, or ?t=<token> for a call), senders put integration keys
(ogk_...) in Authorization headers, and gunicorn writes raw request lines: into the access
log, and into its error log when it refuses a request (a request line with a raw space, say).
`redact` is the one place that knows what a secret looks like; RedactingLogger applies it to
every log record the server process creates (gunicorn's error and access logs, the app's own
logging) before any handler writes it. The rest of a line stays, since it says what was asked
(?status=active, ?schedule=primary)."""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger

_SECRETS = [
    # a token=... query parameter, up to the next &, space or quote
    (re.compile(r"(?i)(^|[?&])(token=)[^&\s\"'<>]*"), r"\1\2[redacted]"),
    # a page token: the path of an acknowledge link, and the ?t= of a voice call's key press
    (re.compile(r"(/p/)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    (re.compile(r"(/twilio/voice\?(?:[^\s\"'<>]*&)?t=)[^&\s\"'<>]*"), r"\1[redacted]"),
    # feed tokens and integration keys wherever they appear
    (re.compile(r"\b(og[fk]_)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    # whatever an Authorization header carries, and credentials after an auth scheme elsewhere
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,;)\]}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;)\]}]+"), r"\1\2[redacted]"),
    # Slack tokens (a bot's xoxb-..., a user's xoxp-...)
    (re.compile(r"\b(xox[abpre]-)[A-Za-z0-9\-]+"), r"\1[redacted]"),
]


def redact(text: str | None) -> str | None:
    if not text:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _redacting_factory(make_record):
    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call: logging reports it when the record is written
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info:
            # a handler formats the traceback once and keeps the text: redact that text here
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    factory.redacts = True
    return factory


def install() -> None:
    """Every log record this process creates from now on is redacted (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacts", False):
        logging.setLogRecordFactory(_redacting_factory(current))


class RedactingLogger(Logger):
    """gunicorn's logger (api/gunicorn.conf.py logger_class): the master builds it first, so
    the record factory is in place before the app is loaded or a worker forked."""

    def __init__(self, cfg):
        install()
        super().__init__(cfg)

    def atoms(self, resp, req, environ, request_time):
        # the access log's format may place an atom anywhere; the record factory redacts the line
        # too, but a format with the token split across atoms would slip past a line-level pattern
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "{raw_uri}e", "{query_string}e", "f", "{referer}i", "{authorization}i"):
            if key in atoms:
                atoms[key] = redact(atoms[key])
        return atoms
