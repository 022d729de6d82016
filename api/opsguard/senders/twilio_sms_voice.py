"""SMS and voice pages through Twilio's own client (the `twilio` package): Messages.create with
the text, Calls.create with the TwiML the claim rendered. OPS_TWILIO_API_BASE sends its requests
to another server (a stand-in in tests and under make run): the client always builds
https://api.twilio.com/..., so its HTTP client rewrites that prefix."""

from __future__ import annotations

import logging
import time

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import failed, sent

TWILIO_API = "https://api.twilio.com"
# Twilio's client logs every request's URL, headers and parameters at INFO: the numbers paged
# stay out of the dispatcher's log
QUIET = logging.getLogger("opsguard.dispatcher.twilio")
QUIET.setLevel(logging.WARNING)


class RebasedHttpClient(TwilioHttpClient):
    """Twilio's HTTP client with https://api.twilio.com replaced by another base URL."""

    def __init__(self, base: str | None, **kwargs):
        super().__init__(**kwargs)
        self.base = (base or "").rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if self.base and url.startswith(TWILIO_API):
            url = self.base + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


class TwilioSender:
    def __init__(self, account_sid: str | None, auth_token: str | None, from_number: str | None,
                 api_base: str | None, timeout_s: float):
        self.from_number = from_number
        self.client = None
        if account_sid and auth_token and from_number:
            self.client = Client(account_sid, auth_token,
                                 http_client=RebasedHttpClient(api_base, timeout=timeout_s, max_retries=0, logger=QUIET))

    def send(self, channel: str, message: dict) -> dict:
        t0 = time.perf_counter()
        if self.client is None:
            return failed(t0, "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM)")
        extra = {"status_callback": message["status_callback"]} if message.get("status_callback") else {}
        try:
            if channel == "sms":
                created = self.client.messages.create(to=message["to"], from_=self.from_number, body=message["body"],
                                                      **extra)
            else:
                created = self.client.calls.create(to=message["to"], from_=self.from_number, twiml=message["twiml"], **extra)
        except TwilioRestException as exc:
            # its message quotes the number; the status and Twilio's error code say enough
            return failed(t0, f"Twilio HTTP {exc.status} error {exc.code}", status=exc.status,
                          retry_after_s=1.0 if exc.status == 429 else None)
        except requests.Timeout:
            return failed(t0, "timed out")
        except requests.ConnectionError:
            return failed(t0, "could not connect")
        except (TwilioException, requests.RequestException) as exc:
            return failed(t0, type(exc).__name__)
        return sent(t0, created.sid)
