"""safepref: human preference data for LLM safety alignment."""

__version__ = "0.1.0"
