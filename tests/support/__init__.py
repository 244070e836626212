"""Helpers shared by the tests: factories, sample data, page parsing, live servers, browsers."""
