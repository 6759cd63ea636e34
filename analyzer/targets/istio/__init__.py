"""Istio VirtualService request mirroring for shadow runs (``IstioMirrorTarget``)."""

from analyzer.targets.istio.target import IstioMirrorSettings, IstioMirrorTarget

__all__ = ["IstioMirrorSettings", "IstioMirrorTarget"]
