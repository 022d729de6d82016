"""Answering a page: acknowledge through the page link (POST /p/<token>, form action=acknowledge,
each request with a token of its own: a token answers once) beside the signed POST
/ops/incidents/<id>/ack, against one gunicorn with the shipped config, alternating; goal: the link
keeps >= 0.8 of the signed ack's throughput (it does the same transition, plus the token's lookup
and use, and renders HTML instead of JSON)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
from localpg import Cluster

from bench.common import WRK_THREAD_IDS, WRK_THREADS, Figure, api_server, fresh_db, median_pair, run_wrk, wrk

SECONDS = 5
TOKENS_PER_ROUND = 40_000
ROUNDS = 3

# thread t answers lines t, t + threads, ... of its round's file, each token once
PAGE_SCRIPT = WRK_THREAD_IDS + """
function init(args)
  reqs, n = {}, 0
  local i = 0
  for line in io.lines("%(file)s") do
    if i %% %(threads)d == tid then
      reqs[#reqs + 1] = wrk.format("POST", line,
        {["Content-Type"] = "application/x-www-form-urlencoded"}, "action=acknowledge")
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  return reqs[(n - 1) %% #reqs + 1]
end
"""


def _mint(url: str, incidents: list) -> list[list[str]]:
    """ROUNDS lists of fresh link tokens for the principal `bench`, spread over the incidents."""
    with psycopg.connect(url, autocommit=True) as conn:
        tokens = [r[0] for r in conn.execute(
            "SELECT (ops._mint_page_token(NULL, i.id, 'bench', 'link', now())).r_token "
            "FROM generate_series(1, %s) AS g, LATERAL (SELECT (%s::uuid[])[1 + g %% %s] AS id) AS i",
            (TOKENS_PER_ROUND * ROUNDS, incidents, len(incidents)))]
    return [tokens[r * TOKENS_PER_ROUND:(r + 1) * TOKENS_PER_ROUND] for r in range(ROUNDS)]


def _wrk_page(base: str, tokens: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp, "tokens.txt"), Path(tmp, "page.lua")
        data.write_text("".join(f"/p/{t}\n" for t in tokens))
        script.write_text(PAGE_SCRIPT % {"file": data, "threads": WRK_THREADS})
        rps, p99 = run_wrk(script, base, SECONDS)
    assert rps * SECONDS < len(tokens), f"wrk answered more pages than were minted ({rps:.0f}/s)"
    return rps, p99


def bench_answers(cluster: Cluster) -> list[Figure]:
    url = fresh_db(cluster, "bench_answers")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT ops.add_principal('bench', 'human', ARRAY['ops_responder'], 'bench')")
        ids = [r[0] for r in conn.execute(
            "SELECT (ops.trigger_incident('GET /answers/' || g || '::x', 'critical')).id FROM generate_series(1, 5000) g")]
    rounds = _mint(url, ids)
    secret = "bench-secret"  # noqa: S105 - a throwaway server on loopback
    with api_server(url, int(os.environ.get("OPSGUARD_BENCH_API_PORT", "54393")), secret) as base:
        ack_paths = [f"/ops/incidents/{i}/ack" for i in ids]
        signed, page = [], []
        for tokens in rounds:  # alternate, so drift on a noisy machine hits both alike
            signed.append(wrk(base, ack_paths, secret, SECONDS))
            page.append(_wrk_page(base, tokens))
    (signed_rps, signed_p99), (page_rps, page_p99) = median_pair(signed), median_pair(page)
    return [
        ("answers: signed POST /ops/incidents/<id>/ack (req/s, p99 ms)", f"{signed_rps:,.0f}, p99 {signed_p99:.1f}", ""),
        ("answers: POST /p/<token> (req/s, p99 ms)", f"{page_rps:,.0f}, p99 {page_p99:.1f}", ""),
        ("answers: page link / signed ack throughput", f"{page_rps / signed_rps:.2f}", ">= 0.8"),
    ]
