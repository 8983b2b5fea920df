"""Backbones (feature extractors), registered by name in :data:`taxonbench.registries.BACKBONES`:
:mod:`taxonbench.models.backbones` (tiny CNN, torchvision) and :mod:`taxonbench.models.clip` (open_clip)."""
