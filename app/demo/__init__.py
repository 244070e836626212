"""Demo data for `safepref demo`."""
