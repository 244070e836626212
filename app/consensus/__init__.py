"""Consensus of several annotations per item, and inter-annotator agreement metrics."""
