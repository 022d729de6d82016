"""make bench PART=collector measures its own Prometheus, never another one answering on the port."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench import collector as bench_collector


def _fake_bin(root: Path, name: str, code: int) -> None:
    path = root / ".local" / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {code}\n")
    path.chmod(0o755)


class _OtherPrometheus(http.server.BaseHTTPRequestHandler):
    """Ready, with its own data directory: what another bench's Prometheus answers."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = (b'{"status": "success", "data": {"storage.tsdb.path": "/elsewhere/data"}}'
                if self.path == "/api/v1/status/flags" else b"Prometheus Server is Ready.\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_prometheus_that_exits_is_not_mistaken_for_another_on_its_port(tmp_path, monkeypatch):
    # someone else's Prometheus answers on the port ours was given; ours exits (as when the port is taken)
    other = http.server.HTTPServer(("127.0.0.1", 0), _OtherPrometheus)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    _fake_bin(tmp_path, "promtool", 0)
    _fake_bin(tmp_path, "prometheus", 1)
    monkeypatch.setattr(bench_collector, "REPO", tmp_path)
    monkeypatch.setattr(bench_collector, "ROUTES", 1)
    monkeypatch.setattr(bench_collector, "free_port", lambda: other.server_address[1])
    work = tmp_path / "work"
    work.mkdir()
    try:
        with pytest.raises(RuntimeError, match="Prometheus exited with 1"):
            bench_collector._prometheus(work, datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    finally:
        other.shutdown()
