"""Model registries behind one Protocol (``analyzer.registry.base.ModelRegistry``); MLflow first.

See ``docs/registry.md``.
"""
