"""Rollouts: the pure state machine (``machine``), step plans, and the engine that drives them."""
