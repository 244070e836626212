"""What an import file is made of: plain JSONL, gzip-compressed JSONL, or Parquet.

The line readers need a plain, seekable stream of JSON lines (the one-answer-per-line formats
re-read lines by offset). A compressed or Parquet file is therefore first written out as JSON
lines to a temporary file on disk, in chunks, so that memory stays flat whatever the size.
A Parquet row becomes one line, numbered as the row (the first row is line 1).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

from app.errors import ImportRejected

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
COPY_CHUNK = 1024 * 1024
PARQUET_BATCH_ROWS = 1000


def sniff(fp: IO[bytes]) -> str:
    """'gzip', 'parquet' or 'jsonl', from the first bytes; the stream is left at its start."""
    head = fp.read(4)
    fp.seek(0)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head == PARQUET_MAGIC:
        return "parquet"
    return "jsonl"


@contextmanager
def jsonl_source(fp: IO[bytes]) -> Iterator[IO[bytes]]:
    """Yields a seekable stream of JSON lines for `fp` (itself when it is plain JSONL).

    A gzip file may hold JSON lines or a Parquet file (`data.parquet.gz`)."""
    with ExitStack() as stack:
        kind = sniff(fp)
        if kind == "gzip":
            unzipped = stack.enter_context(_temporary())
            _gunzip(fp, unzipped)
            unzipped.seek(0)
            fp, kind = unzipped, sniff(unzipped)
        if kind == "parquet":
            lines = stack.enter_context(_temporary())
            _parquet_to_jsonl(fp, lines)
            lines.seek(0)
            fp = lines
        yield fp


def _temporary() -> IO[bytes]:
    return tempfile.TemporaryFile(prefix="safepref-import-")


def _gunzip(fp: IO[bytes], out: IO[bytes]) -> None:
    try:
        with gzip.GzipFile(fileobj=fp, mode="rb") as unzipped:
            shutil.copyfileobj(unzipped, out, COPY_CHUNK)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportRejected(f"not a readable gzip file: {exc}") from None


def _json_default(value: Any) -> Any:
    # Parquet can hold bytes, dates and decimals, which JSON cannot: as text, the readers then
    # refuse or accept them like any other text value.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _parquet_to_jsonl(fp: IO[bytes], out: IO[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(fp)
        batches = table.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        for batch in batches:
            for row in batch.to_pylist():
                line = json.dumps(row, ensure_ascii=False, default=_json_default)
                out.write(line.encode("utf-8") + b"\n")
    except (pa.ArrowException, OSError) as exc:
        raise ImportRejected(f"not a readable Parquet file: {exc}") from None
