"""The traffic observer: what the cluster really served, recorded in the ledger.

Outside the integrations on purpose: it joins a watch (``targets``) to the ledger, and
integrations may import neither each other nor the ledger.
"""

from analyzer.observer.recorder import ObservedTrafficRecorder, Outcome, Recorded
from analyzer.observer.service import ObserverMetrics, TrafficObserver

__all__ = ["ObservedTrafficRecorder", "ObserverMetrics", "Outcome", "Recorded", "TrafficObserver"]
