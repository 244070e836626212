"""gzip for streamed exports: compressed chunk by chunk, so nothing is held whole."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

# Flushing about every this many input bytes keeps the stream moving without hurting the
# compression ratio much.
FLUSH_BYTES = 256 * 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (a q=0 refuses it)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _zero(q[2:]))
    return False


def _zero(value: str) -> bool:
    try:
        return float(value) == 0.0
    except ValueError:
        return False


def gzip_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    pending = 0
    for chunk in chunks:
        out = compressor.compress(chunk)
        pending += len(chunk)
        if pending >= FLUSH_BYTES:
            out += compressor.flush(zlib.Z_SYNC_FLUSH)
            pending = 0
        if out:
            yield out
    yield compressor.flush()
