"""Datadog: the judge's evidence from Datadog's metrics query API (``/api/v1/query``)."""

from analyzer.metrics.datadog.client import SITES, DatadogRetryPolicy
from analyzer.metrics.datadog.query import check_datadog_template, render_datadog
from analyzer.metrics.datadog.source import DatadogSource

__all__ = [
    "SITES",
    "DatadogRetryPolicy",
    "DatadogSource",
    "check_datadog_template",
    "render_datadog",
]
