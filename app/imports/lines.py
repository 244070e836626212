"""Reading an import file line by line: byte limits, UTF-8, JSON (app/core/json_text.py's rules),
blank lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from app.core.json_text import JSONRefused, loads
from app.errors import ImportRejected

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class RawLine:
    number: int
    offset: int  # byte offset of the line in the file, for a later re-read
    data: dict[str, Any]


def parse_line(raw: bytes, number: int) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            f"not valid UTF-8 (byte {exc.start + 1} of the line)", line=number
        ) from None
    try:
        value = loads(text)
    except JSONRefused as exc:
        raise ImportRejected(str(exc), line=number) from None
    if not isinstance(value, dict):
        raise ImportRejected(f"expected a JSON object, got {type(value).__name__}", line=number)
    return value


def iter_lines(fp: IO[bytes], max_line_bytes: int) -> Iterator[RawLine]:
    """Yields each non-blank line parsed. Memory holds one line at a time.

    Blank lines are tolerated only at the end of the file: a blank line with data after it
    usually means a truncated or concatenated file, so it is refused.
    """
    number = 0
    offset = 0
    first_blank: int | None = None
    while True:
        raw = fp.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        start = offset
        offset += len(raw)
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            raise ImportRejected(f"line is longer than {max_line_bytes} bytes", line=number)
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw.strip():
            if first_blank is None:
                first_blank = number
            continue
        if first_blank is not None:
            raise ImportRejected("blank line in the middle of the file", line=first_blank)
        yield RawLine(number, start, parse_line(raw, number))


def read_line_at(fp: IO[bytes], offset: int, number: int, max_line_bytes: int) -> RawLine:
    fp.seek(offset)
    raw = fp.readline(max_line_bytes + 1)
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    return RawLine(number, offset, parse_line(raw, number))
