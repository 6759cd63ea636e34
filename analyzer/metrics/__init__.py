"""Metric sources: where the judge's evidence comes from.

One Protocol (:mod:`analyzer.metrics.base`) and one folder per implementation
(:mod:`~analyzer.metrics.prometheus`, :mod:`~analyzer.metrics.synthetic`). Only
``analyzer.wiring`` (and the ``analyze`` path) chooses between them.
"""
