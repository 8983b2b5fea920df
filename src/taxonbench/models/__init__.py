"""Backbones (feature extractors) and heads."""
