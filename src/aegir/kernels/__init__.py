"""Compiled CPU kernels (built on first use; the PyTorch paths remain the reference)."""
