"""canary-analyzer: judge, drive, gate and record progressive delivery of ML models."""

__version__ = "0.1.0"
