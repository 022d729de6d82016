"""docs/prometheus-rules.yml: valid (promtool check rules), right at each rule's boundary
(promtool test rules, tests/prometheus/rules_test.yml), and the same rules as ops.alerts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "prometheus-rules.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".local" / "bin" / "promtool")
    assert Path(found).exists(), "promtool is missing: make promtool (make test installs it)"
    return found


def test_the_rules_file_is_valid(promtool):
    res = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 7 rules found" in res.stdout


def test_each_rule_fires_at_its_boundary(promtool):
    res = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=ROOT / "tests" / "prometheus",
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheus_and_sql_have_the_same_alerts(conn):
    """One rule per SQL alert. SettingInvalid (0023_settings_tick) may not be in this
    database's ops.evaluate_alerts yet; its rule reads the SQL series, so it waits harmlessly."""
    sql = {r[0] for r in conn.execute("SELECT alert FROM ops.evaluate_alerts()")}
    prom = {line.split("alert: Opsguard", 1)[1].strip() for line in RULES.read_text().splitlines()
            if "- alert: Opsguard" in line}
    assert sql | {"SettingInvalid"} == prom == {
        "TickSlow", "TickMissing", "SlackFailing", "HighLevelIncidents", "DeadLetters", "SettingInvalid",
        "MetricsSourceStale"}


def test_the_rules_read_only_exported_names(conn):
    """Every metric a rule reads is one GET /metrics exports (ops.metric_exports), so a rule
    cannot silently watch a series that no longer exists (an SQL name, say)."""
    import re

    exported = {r[0] for r in conn.execute("SELECT exported_as FROM ops.metric_exports")}
    read = set(re.findall(r"\bopsguard_[a-z_]+", "\n".join(
        line.split("expr:", 1)[-1] for line in RULES.read_text().splitlines() if not line.lstrip().startswith("#"))))
    assert read and read <= exported, read - exported
