"""Backtests: recorded canaries replayed look by look through profiles (docs/backtests.md).

``replay`` is the pure part (decisions, truth, summary); ``manifest`` and ``ledger`` find the
canaries; ``runner`` fetches each look from a metric source and judges it; ``report`` prints;
``command`` is what the CLI runs.
"""
