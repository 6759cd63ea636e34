"""Prometheus metric source (HTTP API over httpx)."""

from analyzer.metrics.prometheus.client import PrometheusClient, RetryPolicy, Series
from analyzer.metrics.prometheus.source import PrometheusSource

__all__ = ["PrometheusClient", "PrometheusSource", "RetryPolicy", "Series"]
