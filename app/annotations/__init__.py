"""Annotations domain."""
