"""Tests of app/batches/."""
