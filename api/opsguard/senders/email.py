"""E-mail pages over SMTP: STARTTLS whenever the server offers it, a login when OPS_SMTP_USER is
set, a plain-text and an HTML part. One connection carries a whole batch (a connection per
message would spend most of its time in the TCP and TLS handshakes)."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from . import failed, sent


def parse_server(url: str) -> tuple[str, int]:
    """smtp://host:port, as the claim names the server (smtp_host, smtp_port)."""
    rest = url.removeprefix("smtp://")
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


def build(message: dict, dedup_key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = message["from"]
    msg["To"] = message["to"]
    msg["Subject"] = message["subject"]
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=message["from"].rpartition("@")[2] or "localhost")
    # a resent message carries the same key: a receiving system can tell a retry from a new page
    msg["X-Dedup-Key"] = dedup_key
    msg.set_content(message["text"])
    msg.add_alternative(message["html"], subtype="html")
    return msg


def _describe(exc: Exception) -> str:
    """SMTP errors quote the recipient: keep the code only."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return "SMTP recipient refused " + ",".join(map(str, codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "SMTP connection dropped"
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


class EmailSender:
    def __init__(self, user: str | None, password: str | None, timeout_s: float, ca_file: str | None = None):
        self.user, self.password, self.timeout_s = user, password, timeout_s
        self.tls = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()

    def connect(self, server: str) -> smtplib.SMTP:
        host, port = parse_server(server)
        smtp = smtplib.SMTP(host, port, timeout=self.timeout_s)
        try:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self.tls)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send_all(self, items: list[tuple[str, str, dict]], may_start) -> list[dict | None]:
        """items: (server, dedup_key, message). One connection per server, kept for the batch;
        a dropped one is opened again once. may_start() false: that message is left (None)."""
        results: list[dict | None] = []
        conns: dict[str, smtplib.SMTP] = {}
        try:
            for server, dedup_key, message in items:
                if not may_start():
                    results.append(None)
                    continue
                results.append(self._send_one(conns, server, dedup_key, message))
        finally:
            for smtp in conns.values():
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        return results

    def _send_one(self, conns: dict, server: str, dedup_key: str, message: dict) -> dict:
        t0 = time.perf_counter()
        try:
            msg = build(message, dedup_key)
        except (ValueError, KeyError, TypeError) as exc:  # a header the email package refuses
            return failed(t0, f"could not build the e-mail: {type(exc).__name__}")
        for again in (False, True):
            try:
                if server not in conns:
                    conns[server] = self.connect(server)
                conns[server].send_message(msg)
                return sent(t0, msg["Message-ID"])
            except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                _drop(conns, server)
                if again:
                    return failed(t0, _describe(exc))
            except (smtplib.SMTPException, OSError) as exc:
                if not isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError):
                    _drop(conns, server)  # in an unknown state: the next message opens a new one
                return failed(t0, _describe(exc))
            except Exception as exc:  # noqa: BLE001 - anything else fails this message, not the dispatcher
                # (a login smtplib cannot encode: it sends user and password as ASCII only)
                _drop(conns, server)
                return failed(t0, f"could not send: {type(exc).__name__}")
        raise AssertionError("unreachable")


def _drop(conns: dict, server: str) -> None:
    smtp = conns.pop(server, None)
    if smtp is not None:
        smtp.close()
