"""Traffic targets: the systems that actually move a model's traffic, behind one Protocol.

``base`` holds the :class:`~analyzer.targets.base.TrafficTarget` Protocol and its value types; each
integration lives in its own folder (``kserve/``, ``argo/``, ``memory/``) and is built by the wiring
module from settings. Nothing here imports the metric sources, the ledger, the gates or the API.
"""
