"""make bench [PART=...] [CHECK=1]: run the parts, print the table, check the goals."""

from __future__ import annotations

import argparse
import operator
import os
import sys
import time
from collections.abc import Callable

from localpg import Cluster, make_temp_datadir

from bench import (
    answers,
    api,
    collector,
    dispatch,
    email_send,
    guard,
    ha,
    heartbeats,
    intake,
    oncall,
    pages,
    policies,
    slow_clients,
    tick,
)
from bench.common import REPEAT, Figure

# in the order a whole run takes them
PARTS: dict[str, list[Callable[[Cluster], list[Figure]]]] = {
    "api": [api.bench_api],
    "events_v2": [intake.bench_events_v2],
    "alertmanager": [intake.bench_alertmanager],
    "guard": [guard.bench_guard, guard.bench_guard_http, guard.bench_guard_storage],
    "collector": [collector.bench_collector],
    "slow_clients": [slow_clients.bench_slow_clients],
    "dispatch": [dispatch.bench_dispatch],
    "email": [email_send.bench_email],
    "heartbeats": [heartbeats.bench_heartbeats],
    "tick_policies": [policies.bench_tick_policies],
    "pages": [pages.bench_pages],
    "oncall": [oncall.bench_oncall],
    "tick": [tick.bench_tick],
    "answers": [answers.bench_answers],
    "ha": [ha.bench_ha],
}

_COMPARE = {"<=": operator.le, ">=": operator.ge}


def missed(figure: Figure) -> str | None:
    """Why a figure misses its goal, or None when it has none or meets it."""
    name, measured, goal = figure
    if not goal:
        return None
    if goal == "yes":
        return None if measured == "yes" else f"{name}: {measured}"
    op, bound = goal.split(" ", 1)
    try:
        value = float(measured.replace(",", ""))
    except ValueError:
        return f"{name}: {measured!r} is not a number to compare with {goal}"
    return None if _COMPARE[op](value, float(bound.replace(",", ""))) else f"{name}: {measured}, goal {goal}"


def render(figures: list[Figure]) -> str:
    width = max(len(f[0]) for f in figures)
    lines = [f"opsguard bench ({REPEAT} runs each, median; {time.strftime('%Y-%m-%d %H:%M')})",
             f"{'figure':<{width}}  {'measured':<28}  goal"]
    lines += [f"{name:<{width}}  {value:<28}  {goal}{'  MISSED' if missed((name, value, goal)) else ''}"
              for name, value, goal in figures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"parts to run (default: all): {', '.join(PARTS)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its goal")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}: the parts are {', '.join(PARTS)}")
    # OPSGUARD_BENCH_PORT moves the throwaway cluster when another bench runs on the same machine
    cluster = Cluster(datadir=make_temp_datadir("opsguard-bench-"), port=int(os.environ.get("OPSGUARD_BENCH_PORT", "54391")),
                      cron_database="postgres")
    cluster.start()
    figures: list[Figure] = []
    try:
        for part in args.parts or PARTS:
            for run in PARTS[part]:
                figures += run(cluster)
    finally:
        cluster.destroy()
    print("\n" + render(figures))
    misses = [m for m in map(missed, figures) if m]
    if args.check and misses:
        print("\nmissed goals:\n" + "\n".join(f"- {m}" for m in misses), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
