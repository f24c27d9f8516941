"""Byte-level encoding: vocabulary, the one serialization function, and the pretraining corpus."""
