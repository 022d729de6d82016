"""GET /metrics: ops.exported_metrics in Prometheus text format, through prometheus_client.
The numbers, names and units are decided in SQL (ops.collect_metrics under the seeds' names,
renamed and scaled to base units by the table ops.metric_exports); this collector only turns
rows into metric families, so psql and Prometheus always agree."""

from __future__ import annotations

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from ..db import call

bp = Blueprint("metrics", __name__)


class OpsCollector:
    """One scrape, one SQL call. Names arrive final (a counter's ends in _total)."""

    def collect(self):
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for row in call("SELECT ops.api_metrics()"):
            names = sorted(row["labels"])
            family = families.get(row["metric"])
            if family is None:
                kind = CounterMetricFamily if row["kind"] == "counter" else GaugeMetricFamily
                # the unit is already the name's suffix; OpenMetrics prints it as # UNIT
                family = families[row["metric"]] = kind(row["metric"], row["help"], labels=names,
                                                        unit=row.get("unit") or "")
            if row["value"] is not None:  # a gauge with nothing to report yet (no tick so far)
                family.add_metric([row["labels"][n] for n in names], row["value"])
        yield from families.values()


registry = CollectorRegistry(auto_describe=False)
registry.register(OpsCollector())


@bp.get("/metrics")
def metrics():
    # the text format (0.0.4), or OpenMetrics when the scraper asks for it, as prometheus_client's own app does
    encode, content_type = choose_encoder(request.headers.get("Accept"))
    return Response(encode(registry), headers={"Content-Type": content_type})
