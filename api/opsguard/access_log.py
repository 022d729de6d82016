"""gunicorn's access log without secrets: a calendar feed URL carries its token in the query
string (?token=..., SPEC 11: calendar apps cannot send headers), and gunicorn logs the raw
request line. The token's value is replaced before the line is written; the rest of the
query stays, since it says what was asked (?status=active, ?schedule=primary)."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

# a token=... parameter anywhere in a query string, up to the next & (or a space in the request line)
_SECRET = re.compile(r"(?i)(^|[?&])(token=)[^& ]*")


def redact(text: str | None) -> str | None:
    return _SECRET.sub(r"\1\2[redacted]", text) if text else text


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "{raw_uri}e", "{query_string}e", "f", "{referer}i"):
            if key in atoms:
                atoms[key] = redact(atoms[key])
        return atoms
