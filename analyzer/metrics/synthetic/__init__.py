"""Seeded synthetic metric source (demo, tests, benchmarks)."""

from analyzer.metrics.synthetic.generator import DEFAULT_BUCKETS_MS, RevisionBehaviour
from analyzer.metrics.synthetic.source import SyntheticSource

__all__ = ["DEFAULT_BUCKETS_MS", "RevisionBehaviour", "SyntheticSource"]
