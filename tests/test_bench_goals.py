"""make bench CHECK=1 fails on a missed goal: how a figure is read against its goal."""

from __future__ import annotations

import pytest
from bench.__main__ import PARTS, main, missed, render


def test_figures_within_their_goals_pass():
    assert missed(("ratio", "1.50", "<= 1.5")) is None
    assert missed(("rate", "12,345", ">= 10,000")) is None
    assert missed(("index used", "yes", "yes")) is None
    assert missed(("informational", "850 vs 1,044", "")) is None


def test_figures_past_their_goals_are_named():
    assert missed(("ratio 1M / 10k", "1.51", "<= 1.5")) == "ratio 1M / 10k: 1.51, goal <= 1.5"
    assert missed(("escalations per second", "9,999", ">= 10,000")) is not None
    assert missed(("claim plan uses incidents_due index", "NO: Seq Scan", "yes")) is not None
    assert "not a number" in missed(("ratio", "n/a", "<= 2"))


def test_the_table_marks_a_missed_goal():
    table = render([("ratio a", "1.10", "<= 1.2"), ("ratio b", "1.30", "<= 1.2")])
    assert table.splitlines()[-2].rstrip().endswith("<= 1.2")
    assert table.splitlines()[-1].endswith("MISSED")


def test_an_unknown_part_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2
    assert "the parts are " + ", ".join(PARTS) in capsys.readouterr().err
