"""Kairos cluster provider for RKE2."""

__version__ = "0.1.0"
