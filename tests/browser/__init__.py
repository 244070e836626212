"""Browser tests. A package, so that its conftest is imported as `browser.conftest` and the
top-level `conftest` module (which other test modules import by name) stays the suite's own."""
