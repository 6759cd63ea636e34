"""An in-memory traffic target for the demo and tests."""

from analyzer.targets.memory.target import InMemoryTarget

__all__ = ["InMemoryTarget"]
