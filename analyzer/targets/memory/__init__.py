"""In-memory targets for the demo and tests: one model's traffic, and a fleet of models."""

from analyzer.targets.memory.fleet import InMemoryFleetTarget
from analyzer.targets.memory.target import InMemoryTarget

__all__ = ["InMemoryFleetTarget", "InMemoryTarget"]
