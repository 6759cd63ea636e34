"""The ModelMesh fleet target: one model's InferenceService moved whole to a new version."""

from analyzer.targets.modelmesh.target import ModelMeshTarget, ModelMeshTargetSettings

__all__ = ["ModelMeshTarget", "ModelMeshTargetSettings"]
