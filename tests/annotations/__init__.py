"""Tests of app/annotations/."""
