"""Slack direct-message pages through slack_sdk's WebClient (chat.postMessage to the user id,
with the Block Kit buttons the claim rendered). OPS_SLACK_API_BASE points it elsewhere."""

from __future__ import annotations

import time
import urllib.error

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from . import failed, sent


class SlackDMSender:
    def __init__(self, bot_token: str | None, api_base: str | None, timeout_s: float):
        self.client = None
        if bot_token:
            base = (api_base or "https://slack.com/api/").rstrip("/") + "/"
            self.client = WebClient(token=bot_token, base_url=base, timeout=max(1, round(timeout_s)))

    def send(self, message: dict) -> dict:
        t0 = time.perf_counter()
        if self.client is None:
            return failed(t0, "Slack is not configured (SLACK_BOT_TOKEN)")
        try:
            resp = self.client.chat_postMessage(channel=message["channel"], text=message["text"], blocks=message["blocks"])
        except SlackApiError as exc:
            status = exc.response.status_code
            retry = exc.response.headers.get("Retry-After") if status == 429 else None
            return failed(t0, f"Slack {status}: {exc.response.get('error')}", status=status,
                          retry_after_s=float(retry) if retry and retry.isdigit() else None)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            return failed(t0, "timed out" if isinstance(exc, TimeoutError) else "could not connect")
        except SlackClientError as exc:
            return failed(t0, type(exc).__name__)
        return sent(t0, resp.get("ts"), status=resp.status_code)
