"""Tests of the queue: next, leases, submits, gold items, under concurrency and live."""
