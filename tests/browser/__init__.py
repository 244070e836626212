"""Browser tests: the real server driven by headless Chromium (fixtures in conftest.py)."""
