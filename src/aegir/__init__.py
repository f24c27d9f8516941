"""Aegir: byte-level table understanding."""
__version__ = "0.1.0"
