"""The JSON body rules' quick check (app/core/json_text.py): skipping the walk over a parsed
body must never let through what the walk would refuse."""

from __future__ import annotations

import re

import pytest

from app.core.json_text import JSONRefused, loads, loads_checked, problem_in


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


TEXTS = [
    '{"a": [1, 2.5, null, true, {"b": "caf\u00e9"}]}',
    '{"a": "x\\u0041y"}',  # an escape, harmless: walked, accepted
    '{"a": "x\\u0000y"}',
    '{"\\u0000": 1}',
    '{"a": "x\\ud800y"}',
    '{"\\udfff": 1}',
    '"\ud800"',  # a lone surrogate in a str (not bytes): not ASCII, walked
    _nested(32),
    _nested(33),
    '{"a": ' + _nested(32) + "}",
    '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',  # brackets in a string only overcount
]


def _bodies() -> list[str | bytes]:
    found: list[str | bytes] = []
    for text in TEXTS:
        found.append(text)
        if text.isascii() or "\ud800" not in text:  # a lone surrogate has no UTF-8 form
            found.append(text.encode("utf-8"))
    return found


@pytest.mark.parametrize("body", _bodies())
def test_the_quick_check_refuses_exactly_what_the_walk_refuses(body: str | bytes) -> None:
    expected = problem_in(loads(body))
    if expected is None:
        assert loads_checked(body) == loads(body)
    else:
        with pytest.raises(JSONRefused, match=re.escape(expected)):
            loads_checked(body)
