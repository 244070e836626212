"""The queue's PostgreSQL functions: their canonical source is one .sql file each in sql/.

A migration never reads these files: it embeds a frozen copy of the text it installs, so
that upgrading through history always installs what that revision meant. To change a
function, edit its file here and add a migration that installs a copy of the new text;
tests/queue/test_queue_functions.py fails while the functions in a migrated database differ from
these files.
"""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"

# Signature -> file, in the order they are installed.
FUNCTIONS: dict[str, str] = {
    "safepref_caller(text, int, int, timestamptz)": "caller.sql",
    "safepref_rotation(int, int, int)": "rotation.sql",
    "safepref_sweep(int, timestamptz, int)": "sweep.sql",
    "safepref_claim(int, int, int, bool)": "claim.sql",
    "safepref_next(int, int, timestamptz, float8, bool)": "next.sql",
    "safepref_submit_context(int, int)": "submit_context.sql",
    "safepref_target(int, int)": "target.sql",
    "safepref_submit(int, int, json, int, bool, timestamptz)": "submit.sql",
}


def name(signature: str) -> str:
    return signature.split("(", 1)[0]


def source(signature: str) -> str:
    """The canonical CREATE OR REPLACE FUNCTION text of one function."""
    return (SQL_DIR / FUNCTIONS[signature]).read_text(encoding="utf-8")
