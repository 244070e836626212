"""Batches domain."""
