"""docs/ha.md's production patroni.yml says what make ha runs (scripts/ha/patroni.yml): the same
settings for the whole cluster (bootstrap.dcs: timing, synchronous mode, pg_cron's parameters)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _doc_patroni() -> dict:
    text = (ROOT / "docs/ha.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("scope: opsguard")]
    return yaml.safe_load(block)


def _make_ha_patroni() -> dict:
    # the $-names are per node; the cluster-wide settings have none
    return yaml.safe_load(re.sub(r"\$\w+", "x", (ROOT / "scripts/ha/patroni.yml").read_text()))


def test_the_production_file_has_make_has_cluster_settings():
    assert _doc_patroni()["bootstrap"]["dcs"] == _make_ha_patroni()["bootstrap"]["dcs"]


def test_the_production_file_keeps_what_a_failover_needs():
    doc = _doc_patroni()
    dcs = doc["bootstrap"]["dcs"]
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]  # Patroni's own rule
    assert dcs["synchronous_mode"] is True and dcs["postgresql"]["use_pg_rewind"] is True
    assert "data-checksums" in doc["bootstrap"]["initdb"]
    assert set(doc["postgresql"]["authentication"]) == {"superuser", "replication", "rewind"}
    assert doc["postgresql"]["basebackup"] == [{"checkpoint": "fast"}]
