"""Fleet rollouts: many models upgraded in waves and judged together (``docs/fleets.md``)."""
