"""The import readers (app/imports/formats.py, lines.py) called on in-memory files: every
refusal's full message (line, field, problem) and the drafts each format produces.

The upload tests check the same rules end to end on both backends with a few words of each
message; these pin the whole message and the edge of each limit, quickly.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest

from app.errors import ImportRejected
from app.imports.formats import (
    DraftItem,
    DraftResponse,
    Limits,
    ReadStats,
    detect_format,
    read_items,
    response_sha256,
)
from app.imports.lines import iter_lines, read_line_at
from app.projects.taxonomy import BEAVERTAILS_14, PKU_SAFERLHF_19

LIMITS = Limits(max_field_bytes=40, max_line_bytes=4000)
PKU = list(PKU_SAFERLHF_19)


def jsonl(*rows: Any) -> bytes:
    return b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)


def read(
    data: bytes,
    fmt: Any = "auto",
    *,
    labels: bool = False,
    taxonomy: list[str] | None = None,
    limits: Limits = LIMITS,
    stats: ReadStats | None = None,
) -> list[DraftItem]:
    return list(
        read_items(
            io.BytesIO(data),
            fmt,
            limits,
            labels=labels,
            taxonomy=PKU if taxonomy is None else taxonomy,
            stats=stats,
        )
    )


def refused(data: bytes, fmt: Any = "auto", **options: Any) -> str:
    with pytest.raises(ImportRejected) as caught:
        read(data, fmt, **options)
    return caught.value.detail


def pair(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prompt": "p",
        "response_0": "a0",
        "response_1": "a1",
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "response_0_harm_category": {"Violence": False},
        "response_1_harm_category": {"Cybercrime": True, "Insulting Behavior": True},
        "response_0_severity_level": 0,
        "response_1_severity_level": 3,
        "better_response_id": 1,
        "safer_response_id": 0,
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not None}


def test_detection_from_the_first_line_keys() -> None:
    assert detect_format(["prompt", "response_0", "response_1"]) == "pku-saferlhf"
    assert detect_format(["prompt", "responses"]) == "generic"
    assert detect_format(["prompt", "response", "severity_level"]) == "pku-saferlhf-qa"
    assert detect_format(["prompt", "response", "harm_category"]) == "pku-saferlhf-qa"
    assert detect_format(["prompt", "response", "category"]) == "beavertails"
    assert detect_format(["response_0", "response_1", "responses"]) == "pku-saferlhf"
    keys = [f"k{i:02}" for i in range(14)]
    with pytest.raises(ImportRejected) as caught:
        detect_format(["response", *keys], line=3)
    assert caught.value.detail == (
        "line 3: cannot tell the format from the keys "
        f"{sorted(['response', *keys])[:12]}; name it with --format / ?format= "
        "(pku-saferlhf, pku-saferlhf-qa, beavertails, generic)"
    )
    assert caught.value.line == 3
    for keys2 in (["response_0"], ["response"], ["prompt"]):
        with pytest.raises(ImportRejected):
            detect_format(keys2)


def test_pku_pairs_with_labels_become_drafts_with_reference_payloads() -> None:
    stats = ReadStats()
    (item,) = read(
        jsonl(pair(response_0_source="m0", prompt_source="ps")), labels=True, stats=stats
    )
    assert stats.format == "pku-saferlhf"
    assert (item.line, item.prompt, item.prompt_source) == (1, "p", "ps")
    assert [(r.text, r.source, r.sha256) for r in item.responses] == [
        ("a0", "m0", response_sha256("p", "a0")),
        ("a1", "", response_sha256("p", "a1")),
    ]
    assert item.reference_payload() == {
        "responses": [
            {"position": 0, "is_safe": True, "harm_categories": [], "severity": None},
            {
                "position": 1,
                "is_safe": False,
                # Taxonomy order, not the file's.
                "harm_categories": ["Insulting Behavior", "Cybercrime"],
                "severity": "severe",
            },
        ],
        "helpfulness": [1, 0],
        "harmlessness": [0, 1],
    }
    # A row with only the trade-off preference gives the single ranking.
    single = {"prompt": "p", "response_0": "a0", "response_1": "a1", "better_response_id": 0}
    (item,) = read(jsonl(single), labels=True)
    assert item.preferences == {"single": [0, 1]}
    assert item.reference_payload() == {"responses": [], "single": [0, 1]}
    # Without labels: no payload at all.
    (item,) = read(jsonl(pair()), labels=False)
    assert item.preferences == {} and item.reference_payload() is None
    assert all(r.label is None for r in item.responses)


def test_severity_levels_map_to_names() -> None:
    for level, name in ((0, None), (1, "minor"), (2, "moderate"), (3, "severe")):
        (item,) = read(jsonl(pair(response_1_severity_level=level)), labels=True)
        assert item.responses[1].label is not None
        assert item.responses[1].label["severity"] == name


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (pair(response_1=None), "line 2: field 'response_1': missing"),
        (pair(prompt=7), "line 2: field 'prompt': expected a string, got number"),
        (pair(prompt=True), "line 2: field 'prompt': expected a string, got boolean"),
        (pair(prompt=[1]), "line 2: field 'prompt': expected a string, got array"),
        (pair(prompt={}), "line 2: field 'prompt': expected a string, got object"),
        (pair(prompt=1.5), "line 2: field 'prompt': expected a string, got number"),
        (pair(response_0=""), "line 2: field 'response_0': must not be empty"),
        (pair(response_0=" \t"), "line 2: field 'response_0': must not be empty"),
        (
            pair(response_0="x" * 41),
            "line 2: field 'response_0': is 41 bytes, more than the limit of 40",
        ),
        (
            pair(response_0="é" * 21),
            "line 2: field 'response_0': is 42 bytes, more than the limit of 40",
        ),
        (
            pair(response_0_source="s" * 201),
            "line 2: field 'response_0_source': is 201 bytes, more than the limit of 40",
        ),
        (
            pair(response_1_sha256="00"),
            "line 2: field 'response_1_sha256': does not match sha256(prompt + response)",
        ),
        (pair(is_response_0_safe=None), "line 2: field 'is_response_0_safe': missing"),
        (
            pair(is_response_0_safe=1),
            "line 2: field 'is_response_0_safe': expected true or false, got number",
        ),
        (pair(response_1_harm_category=None), "line 2: field 'response_1_harm_category': missing"),
        (
            pair(response_1_harm_category=["Violence"]),
            "line 2: field 'response_1_harm_category': expected an object of category -> bool, "
            "got array",
        ),
        (
            pair(response_1_harm_category={"Violence": True, "Nope": True, "Later": True}),
            "line 2: field 'response_1_harm_category': unknown harm category 'Nope'",
        ),
        (
            pair(response_1_harm_category={"Violence": 1}),
            "line 2: field 'response_1_harm_category': category 'Violence': expected true or false",
        ),
        (
            pair(response_1_harm_category={"Violence": None}),
            "line 2: field 'response_1_harm_category': category 'Violence': expected true or false",
        ),
        (
            pair(response_1_severity_level=None),
            "line 2: field 'response_1_severity_level': missing",
        ),
        (
            pair(response_1_severity_level=4),
            "line 2: field 'response_1_severity_level': must be between 0 and 3",
        ),
        (
            pair(response_1_severity_level=-1),
            "line 2: field 'response_1_severity_level': must be between 0 and 3",
        ),
        (
            pair(response_1_severity_level=True),
            "line 2: field 'response_1_severity_level': expected an integer, got boolean",
        ),
        (
            pair(response_1_severity_level=2.0),
            "line 2: field 'response_1_severity_level': expected an integer, got number",
        ),
        (
            pair(better_response_id=2),
            "line 2: field 'better_response_id': must be between 0 and 1",
        ),
        (pair(safer_response_id=None), "line 2: field 'safer_response_id': missing"),
        (
            {"prompt": "p", "response_0": "a", "response_1": "b", "better_response_id": "1"},
            "line 2: field 'better_response_id': expected an integer, got string",
        ),
        (
            {"prompt": "p", "response_0": "a", "response_1": "b"},
            "line 2: field 'better_response_id': missing",
        ),
    ],
)
def test_pku_line_refusals_name_the_line_and_field(row: dict[str, Any], message: str) -> None:
    assert refused(jsonl(pair(), row), labels=True) == message


def test_a_safe_label_set_only_by_its_flag_is_read_as_dual() -> None:
    row = pair(safer_response_id=None, better_response_id=None)
    assert refused(jsonl(row), labels=True) == "line 1: field 'better_response_id': missing"


def test_generic_lines_and_their_refusals() -> None:
    rows = [
        {
            "prompt": "p",
            "responses": ["a", {"text": "b", "source": "m"}],
            "id": 7,
            "meta": {"k": 1},
        },
        {"prompt": "q", "responses": [{"text": "c"}, "d"], "id": "x-1", "prompt_source": "s"},
    ]
    first, second = read(jsonl(*rows), labels=True)
    assert [(r.text, r.source) for r in first.responses] == [("a", ""), ("b", "m")]
    assert (first.external_id, first.meta, first.prompt_source) == ("7", {"k": 1}, "")
    assert (second.external_id, second.meta, second.prompt_source) == ("x-1", None, "s")
    assert first.reference_payload() is None
    ok = {"prompt": "p", "responses": ["a", "b"]}
    cases = [
        ({"prompt": "p"}, "field 'responses': missing"),
        ({"prompt": "p", "responses": "ab"}, "field 'responses': expected an array, got string"),
        (
            {"prompt": "p", "responses": ["a"]},
            "field 'responses': an item needs at least two responses, got 1",
        ),
        (
            {"prompt": "p", "responses": ["a"] * 17},
            "field 'responses': at most 16 responses per item",
        ),
        (
            {"prompt": "p", "responses": ["a", 3]},
            "field 'responses[1]': expected a string, got number",
        ),
        (
            {"prompt": "p", "responses": ["a", {"source": "m"}]},
            "field 'responses[1].text': expected a string, got null",
        ),
        (
            {"prompt": "p", "responses": ["a", {"text": "b", "source": "m" * 201}]},
            "field 'responses[1].source': is 201 bytes, more than the limit of 40",
        ),
        ({**ok, "id": True}, "field 'id': expected a string, got boolean"),
        ({**ok, "id": 1.5}, "field 'id': expected a string, got number"),
        ({**ok, "id": ["a"]}, "field 'id': expected a string, got array"),
        ({**ok, "meta": [1]}, "field 'meta': expected an object, got array"),
        ({**ok, "meta": {"k": "x" * 40}}, "field 'meta': is 49 bytes, more than the limit of 40"),
        ({**ok, "meta": {"k": "a\u0000"}}, "field 'meta': a string contains a NUL character"),
    ]
    for row, message in cases:
        assert refused(jsonl(ok, row)) == f"line 2: {message}", row
    # Exactly at the limits: accepted.
    at_limit = {"prompt": "p", "responses": ["a"] * 16, "meta": {"k": "x" * 31}}
    (item,) = read(jsonl(at_limit))
    assert len(item.responses) == 16 and item.meta == {"k": "x" * 31}
    (item,) = read(jsonl({"prompt": "x" * 40, "responses": ["a", "b"], "id": "i" * 40}))
    assert item.prompt == "x" * 40 and item.external_id == "i" * 40
    wide = Limits(max_field_bytes=1000, max_line_bytes=2000)
    (item,) = read(jsonl({**ok, "id": "i" * 200}), limits=wide)
    assert item.external_id == "i" * 200
    assert (
        refused(jsonl({**ok, "id": "i" * 201}), limits=wide)
        == "line 1: field 'id': is longer than 200 characters"
    )
    deep: dict[str, Any] = {}
    for _ in range(15):
        deep = {"k": deep}
    (item,) = read(jsonl({**ok, "meta": deep}), limits=wide)
    assert item.meta == deep
    assert refused(jsonl({**ok, "meta": {"k": deep}}), limits=wide) == (
        "line 1: field 'meta': nested more than 16 levels deep"
    )


def test_one_answer_per_line_formats_are_grouped_by_prompt_in_first_line_order() -> None:
    def qa(prompt: str, response: str, level: int, **more: Any) -> dict[str, Any]:
        categories = {"Violence": level > 0}
        return {
            "prompt": prompt,
            "response": response,
            "is_safe": level == 0,
            "harm_category": categories,
            "severity_level": level,
            **more,
        }

    data = jsonl(
        qa("p1", "a", 0, prompt_source="s1"),
        qa("p2", "b", 2),
        qa(
            "p1", "c", 1, prompt_source="s1", response_source="m", sha256=response_sha256("p1", "c")
        ),
        qa("p2", "d", 0),
    )
    stats = ReadStats()
    items = read(data, labels=True, stats=stats)
    assert stats.format == "pku-saferlhf-qa" and stats.prompts_with_one_answer == 0
    assert [(i.line, i.prompt, i.prompt_source) for i in items] == [(1, "p1", "s1"), (2, "p2", "")]
    assert [(r.text, r.source) for r in items[0].responses] == [("a", ""), ("c", "m")]
    assert [r.text for r in items[1].responses] == ["b", "d"]
    lone = ReadStats()
    assert len(read(jsonl(qa("p1", "a", 0), qa("p1", "b", 0), qa("p3", "c", 0)), stats=lone)) == 1
    assert lone.prompts_with_one_answer == 1
    assert items[0].responses[1].sha256 == response_sha256("p1", "c")
    assert items[0].responses[1].label == {
        "is_safe": False,
        "harm_categories": ["Violence"],
        "severity": "minor",
    }
    assert refused(jsonl(qa("p", "a", 0), qa("p", "b", 0, sha256="0"))) == (
        "line 2: field 'sha256': does not match sha256(prompt + response)"
    )
    assert refused(jsonl(qa("p", "a", 0), qa("p", "b", 5)), labels=True) == (
        "line 2: field 'severity_level': must be between 0 and 3"
    )
    crowded = jsonl(*(qa("p", f"a{i}", 0) for i in range(17)))
    assert refused(crowded) == (
        "line 17: field 'prompt': this prompt has 17 answers; an item holds at most 16"
    )
    assert len(read(jsonl(*(qa("p", f"a{i}", 0) for i in range(16))))[0].responses) == 16
    # BeaverTails: its own category names, no severity.
    beaver = [
        {"prompt": "q", "response": "x", "is_safe": True, "category": {"animal_abuse": False}},
        {"prompt": "q", "response": "y", "is_safe": False, "category": {"self_harm": True}},
    ]
    (item,) = read(jsonl(*beaver), labels=True, taxonomy=list(BEAVERTAILS_14))
    assert [r.label for r in item.responses] == [
        {"is_safe": True, "harm_categories": [], "severity": None},
        {"is_safe": False, "harm_categories": ["self_harm"], "severity": None},
    ]
    (item,) = read(jsonl(*beaver), labels=False, taxonomy=list(BEAVERTAILS_14))
    assert [r.label for r in item.responses] == [None, None]
    assert refused(jsonl(*beaver), labels=True) == (
        "the project's taxonomy does not hold the beavertails categories; import with "
        "--labels-as ignore or use a project with the matching taxonomy preset"
    )
    assert refused(jsonl(pair()), labels=True, taxonomy=list(BEAVERTAILS_14)) == (
        "the project's taxonomy does not hold the pku-saferlhf categories; import with "
        "--labels-as ignore or use a project with the matching taxonomy preset"
    )
    # Generic lines carry no labels: any taxonomy will do.
    assert len(read(jsonl({"prompt": "p", "responses": ["a", "b"]}), labels=True, taxonomy=[])) == 1


def test_the_format_can_be_named_and_an_unknown_one_is_refused() -> None:
    generic_looking = {"prompt": "p", "responses": ["a", "b"], "response_0": "x", "response_1": "y"}
    (item,) = read(jsonl(generic_looking), "generic")
    assert [r.text for r in item.responses] == ["a", "b"]
    assert refused(jsonl(generic_looking), "csv") == (
        "unknown format 'csv'; expected one of auto, pku-saferlhf, pku-saferlhf-qa, "
        "beavertails, generic"
    )
    assert refused(b"") == "line 1: the file holds no data lines"
    assert refused(b"\n\n") == "line 1: the file holds no data lines"


def test_lines_limits_encoding_and_blank_lines() -> None:
    ok = jsonl({"prompt": "p", "responses": ["a", "b"]})
    # A byte-order mark on the first line is dropped; on another line it is not JSON.
    assert len(read(b"\xef\xbb\xbf" + ok + ok)) == 2
    assert refused(ok + b"\xef\xbb\xbf" + ok).startswith("line 2: ")
    # Trailing blank lines are fine; a blank line before data names the first blank line.
    assert len(read(ok + b"\n  \n")) == 1
    assert refused(ok + b"\n \n" + ok) == "line 2: blank line in the middle of the file"
    assert refused(b"caf\xc3\xa9" + b"\xff\n") == "line 1: not valid UTF-8 (byte 6 of the line)"
    assert refused(b"[1, 2]\n") == "line 1: expected a JSON object, got list"
    assert refused(b'"text"\n') == "line 1: expected a JSON object, got str"
    assert refused(b'{"a": NaN}\n').startswith("line 1: NaN")
    # The line limit counts the bytes of a line before its newline.
    limits = Limits(max_field_bytes=100, max_line_bytes=len(ok) - 1)
    assert len(read(ok + ok, limits=limits)) == 2
    longer = jsonl({"prompt": "pp", "responses": ["a", "b"]})
    assert refused(ok + longer, limits=limits) == f"line 2: line is longer than {len(ok) - 1} bytes"
    # The last line may end without a newline, at the limit exactly.
    assert len(read(ok + ok.rstrip(b"\n"), limits=limits)) == 2


def test_lines_remember_their_offsets_for_a_second_read() -> None:
    first, second = b'{"a": 1}\n', b'{"b": 2}\n'
    fp = io.BytesIO(b"\xef\xbb\xbf" + first + b"\n" * 0 + second)
    lines = list(iter_lines(fp, 100))
    assert [(r.number, r.offset, r.data) for r in lines] == [
        (1, 0, {"a": 1}),
        (2, 3 + len(first), {"b": 2}),
    ]
    again = read_line_at(fp, lines[1].offset, 2, 100)
    assert (again.number, again.offset, again.data) == (2, 3 + len(first), {"b": 2})
    assert read_line_at(fp, 0, 1, 100).data == {"a": 1}


def test_items_with_the_same_answers_in_any_order_hash_alike() -> None:
    a = DraftItem(1, "p", "", [DraftResponse("x", ""), DraftResponse("y", "")])
    b = DraftItem(2, "p", "s", [DraftResponse("y", "m"), DraftResponse("x", "")])
    c = DraftItem(3, "p", "", [DraftResponse("x", ""), DraftResponse("z", "")])
    d = DraftItem(4, "q", "", [DraftResponse("x", ""), DraftResponse("y", "")])
    e = DraftItem(5, "p", "", [DraftResponse("xy", ""), DraftResponse("", "")])
    assert a.content_hash() == b.content_hash()
    assert len({a.content_hash(), c.content_hash(), d.content_hash(), e.content_hash()}) == 4
    assert response_sha256("p", "é") == hashlib.sha256("pé".encode()).hexdigest()


def test_the_content_hash_formula_is_fixed_since_stored_hashes_find_duplicates() -> None:
    # Items imported earlier keep their stored hash: a changed formula would let a re-import
    # duplicate them.
    item = DraftItem(1, "pé", "", [DraftResponse("b", ""), DraftResponse("a", "")])
    expected = hashlib.sha256("pé".encode())
    for text in ("a", "b"):
        expected.update(b"\x00" + hashlib.sha256(text.encode()).digest())
    assert item.content_hash() == expected.hexdigest()


def test_edges_each_format_reader_keeps() -> None:
    # Generic: line numbers, no id means no external id, a dict answer without source.
    rows = [
        {"prompt": "p", "responses": [{"text": "c"}, "d"]},
        {"prompt": "q", "responses": ["e", {"text": "f", "source": ""}]},
    ]
    first, second = read(jsonl(*rows))
    assert (first.line, second.line) == (1, 2)
    assert first.external_id is None and second.external_id is None
    assert [r.source for r in first.responses + second.responses] == ["", "", "", ""]
    empty = {"prompt": "p", "responses": ["a", ""]}
    assert refused(jsonl(empty)) == "line 1: field 'responses[1]': must not be empty"
    # PKU pairs: the second answer preferred; an empty source is no source.
    (item,) = read(
        jsonl(pair(better_response_id=1, safer_response_id=1, response_0_source="")),
        labels=True,
    )
    assert item.preferences == {"helpfulness": [1, 0], "harmlessness": [1, 0]}
    assert item.responses[0].source == ""
    single = {"prompt": "p", "response_0": "a0", "response_1": "a1", "better_response_id": 1}
    (item,) = read(jsonl(single), labels=True)
    assert item.preferences == {"single": [1, 0]}
    refusal = refused(jsonl(pair(), pair(prompt="a\u0000b")))
    assert refusal.startswith("line 2: field 'prompt': ") and "NUL" in refusal
    # Detection: the two answer keys alone are a pair (whose prompt is then missing); the
    # line named is the first data line.
    assert detect_format(["response_0", "response_1"]) == "pku-saferlhf"
    with pytest.raises(ImportRejected) as caught:
        detect_format(["question"])
    assert caught.value.line == 1 and caught.value.detail.startswith("line 1: ")
    assert refused(b"\n" * 0 + jsonl({"question": "q"})).startswith("line 1: cannot tell")


def test_one_answer_per_line_files_report_the_first_bad_line_in_file_order() -> None:
    def qa(prompt: str, response: str, level: int) -> dict[str, Any]:
        return {
            "prompt": prompt,
            "response": response,
            "is_safe": True,
            "harm_category": {},
            "severity_level": level,
        }

    data = jsonl(qa("p1", "a", 9), qa("p2", "", 0), qa("p1", "b", 0), qa("p2", "c", 0))
    assert refused(data, labels=True) == "line 1: field 'severity_level': must be between 0 and 3"
    # Lines at the byte limit are read back whole for grouping.
    rows = [qa("p", "a", 0), qa("p", "b", 0)]
    size = max(len(jsonl(r)) - 1 for r in rows)
    limits = Limits(max_field_bytes=100, max_line_bytes=size)
    (item,) = read(jsonl(*rows), limits=limits, labels=True)
    assert [r.text for r in item.responses] == ["a", "b"]
