"""The test suite, one folder per package of app/; shared helpers live in tests/support/."""
