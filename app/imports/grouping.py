"""Grouping the lines of a one-answer-per-line file by prompt, on disk.

Holding a digest and an offset per line in a dict costs about 330 bytes a line in Python
(190 MB for the 600,000 lines of a large QA file); a temporary SQLite file holds the same in
a few dozen bytes on disk and a bounded page cache in memory.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

_BATCH = 5_000
# SQLite page cache for the spill file, in KiB (a negative cache_size is KiB).
_CACHE_KIB = 16_384


class PromptGroups:
    """Answer locations (byte offset, line number) keyed by their prompt's sha256."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="safepref-import-"))
        self._db = sqlite3.connect(self._dir / "groups.db", isolation_level=None)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = FILE",
            f"cache_size = -{_CACHE_KIB}",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE answers (prompt BLOB, line INTEGER, offset INTEGER)")
        self._pending: list[tuple[bytes, int, int]] = []
        self._indexed = False

    def __enter__(self) -> PromptGroups:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def add(self, prompt: str, offset: int, line: int) -> None:
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        self._pending.append((digest, line, offset))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            # One transaction per batch: in autocommit mode each row would be its own.
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO answers VALUES (?, ?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending = []

    def _index(self) -> None:
        if not self._indexed:
            self._flush()
            self._db.execute("BEGIN")
            self._db.execute("CREATE INDEX answers_by_prompt ON answers (prompt, line)")
            # Each prompt's first line: the order in which items are made.
            self._db.execute(
                "CREATE TABLE prompts AS SELECT prompt, min(line) AS first, count(*) AS n "
                "FROM answers GROUP BY prompt"
            )
            self._db.execute("CREATE INDEX prompts_by_first ON prompts (first)")
            self._db.execute("COMMIT")
            self._indexed = True

    def first_crowded(self, most: int) -> tuple[int, int] | None:
        """(answers, line of the first answer too many) of the first prompt (by first line)
        with more than `most` answers."""
        self._index()
        row = self._db.execute(
            "SELECT prompt, n FROM prompts WHERE n > ? ORDER BY first LIMIT 1", (most,)
        ).fetchone()
        if row is None:
            return None
        prompt, count = row
        (line,) = self._db.execute(
            "SELECT line FROM answers WHERE prompt = ? ORDER BY line LIMIT 1 OFFSET ?",
            (prompt, most),
        ).fetchone()
        return int(count), int(line)

    def single_count(self) -> int:
        self._index()
        (count,) = self._db.execute("SELECT count(*) FROM prompts WHERE n = 1").fetchone()
        return int(count)

    def groups(self) -> Iterator[list[tuple[int, int]]]:
        """Each prompt with two or more answers: [(offset, line), ...] in line order;
        prompts in the order of their first line."""
        self._index()
        rows = self._db.execute(
            "SELECT p.first, a.offset, a.line FROM prompts AS p "
            "JOIN answers AS a ON a.prompt = p.prompt "
            "WHERE p.n > 1 ORDER BY p.first, a.line"
        )
        members: list[tuple[int, int]] = []
        current = -1
        for first, offset, line in rows:
            if first != current and members:
                yield members
                members = []
            current = first
            members.append((offset, line))
        if members:
            yield members
