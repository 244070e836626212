"""JSON from outside (request bodies, import lines): one set of rules for what we accept.

Python's json module accepts more than the JSON standard and more than our storage can hold:
NaN and Infinity, numbers that overflow to infinity, integers of thousands of digits (whose
conversion raises, or is slow), strings with unpaired surrogates (which cannot be encoded as
UTF-8, so every later response holding them fails), NUL characters (PostgreSQL text cannot
hold them) and nesting deep enough to exhaust the interpreter's recursion. Each is refused
here with a message that names the problem and never repeats the input.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.errors import Invalid

# Deeper than any structure the API or an import needs; keeps every later recursive walk
# (validation, serialisation, templates) far from the interpreter's limit.
MAX_DEPTH = 32
# Enough for any 64-bit integer; anything longer is refused before it is converted.
MAX_INT_DIGITS = 19


# Unpaired surrogates (a valid pair never reaches a Python str as two code points) and NUL.
_UNSERVABLE = re.compile("[\ud800-\udfff\x00]")


class JSONRefused(ValueError):
    """JSON text or a parsed value that breaks the rules; the message names the problem."""


def _no_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRefused(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused("a number is too large to be stored")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_int=_integer, parse_float=_number)


def loads(text: str | bytes) -> Any:
    """Parses JSON text (bytes must be UTF-8) by the rules above, except the walk over
    strings and depth (see `problem_in`), which callers run on what they keep."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except JSONRefused:
        raise
    except RecursionError:
        raise JSONRefused(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    except UnicodeDecodeError:
        raise JSONRefused("not valid UTF-8") from None


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored and served back, or None."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (not encodable as UTF-8)"
    if "\x00" in text:
        return "contains a NUL character"
    return None


def require_storable(field: str, text: str) -> str:
    """`text` if it can be stored and served back; else Invalid naming `field`. For text
    that arrives outside a JSON body (form fields), which the body rules do not see."""
    problem = text_problem(text)
    if problem:
        raise Invalid(f"{field}: {problem}", field=field)
    return text


def problem_in(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """The first rule a parsed value breaks (strings and keys, numbers, depth), or None.
    Iterative, so a value nested however deep is walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, str):
            problem = text_problem(current)
            if problem:
                return f"a string {problem}"
        elif isinstance(current, float):
            if not math.isfinite(current):
                return "NaN and Infinity are not JSON numbers"
        elif isinstance(current, dict | list):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep"
            if isinstance(current, dict):
                for key, item in current.items():
                    problem = text_problem(key) if isinstance(key, str) else None
                    if problem:
                        return f"a key {problem}"
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in current)
    return None


def _cannot_break_rules(text: str | bytes) -> bool:
    """Whether the JSON text is plainly clear of what `problem_in` looks for, so that the walk
    can be skipped (a request body's usual case): a NUL, or an unpaired surrogate in UTF-8
    bytes, can only reach a parsed string through a \\u escape (the parser refuses raw
    control characters; the UTF-8 decoder refuses encoded surrogates), a str is checked only
    if ASCII, nesting is never deeper than the brackets that open it, and parsing already
    refused non-finite numbers."""
    if isinstance(text, bytes):
        return b"\\u" not in text and text.count(b"[") + text.count(b"{") <= MAX_DEPTH
    return text.isascii() and "\\u" not in text and text.count("[") + text.count("{") <= MAX_DEPTH


def loads_checked(text: str | bytes) -> Any:
    """`loads`, then `problem_in` on the whole value: what a request body must pass."""
    value = loads(text)
    problem = None if _cannot_break_rules(text) else problem_in(value)
    if problem:
        raise JSONRefused(problem)
    return value


def repaired(value: Any, depth: int = 0) -> Any:
    """A stored value made safe to serve, for data written before these rules: unpaired
    surrogates become U+FFFD, non-finite numbers null, anything below MAX_DEPTH is cut."""
    if isinstance(value, str):
        if text_problem(value) is None:
            return value
        return _UNSERVABLE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return None
        if isinstance(value, dict):
            return {repaired(k, depth): repaired(v, depth + 1) for k, v in value.items()}
        return [repaired(v, depth + 1) for v in value]
    return value
