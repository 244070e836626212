"""Import formats: detection from the first line's keys, and line -> item drafts.

Every check names the line and the field; the writer stores nothing until all lines passed
through these functions (the whole import is one transaction).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal, get_args

from app.core.json_text import problem_in, text_problem
from app.errors import ImportRejected
from app.imports.grouping import PromptGroups
from app.imports.lines import RawLine, iter_lines, read_line_at
from app.limits import MAX_RESPONSES
from app.projects.taxonomy import BEAVERTAILS_14, PKU_SAFERLHF_19, SEVERITY_NAMES

ImportFormat = Literal["pku-saferlhf", "pku-saferlhf-qa", "beavertails", "generic"]
FORMATS: tuple[ImportFormat, ...] = get_args(ImportFormat)
# What an import may be asked for: a format, or "auto" (detected from the first line).
FormatChoice = Literal[ImportFormat, "auto"]
FORMAT_CHOICES: tuple[FormatChoice, ...] = ("auto", *FORMATS)
# What to do with the labels a file carries: keep them as reference labels, or drop them.
LabelsAs = Literal["reference", "ignore"]
LABELS_AS: tuple[LabelsAs, ...] = get_args(LabelsAs)
# Sources and external ids are stored in String(200) columns.
MAX_LABEL_CHARS = 200
# Levels of objects and arrays in an item's free metadata, the object itself included.
MAX_META_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Limits:
    max_field_bytes: int
    max_line_bytes: int


@dataclass(slots=True)
class DraftResponse:
    text: str
    source: str
    # {"is_safe", "harm_categories", "severity"} when the file carries labels for it.
    label: dict[str, Any] | None = None
    # response_sha256(prompt, text) when the reader already computed it ("" otherwise).
    sha256: str = ""


@dataclass(slots=True)
class DraftItem:
    line: int
    prompt: str
    prompt_source: str
    responses: list[DraftResponse]
    external_id: str | None = None
    meta: dict[str, Any] | None = None
    # Rankings as response positions, best first: "helpfulness", "harmlessness", "single".
    preferences: dict[str, list[int]] = field(default_factory=dict)

    def content_hash(self) -> str:
        """Same prompt and same responses (in any order) are the same item."""
        h = hashlib.sha256(self.prompt.encode("utf-8"))
        for text in sorted(r.text for r in self.responses):
            h.update(b"\x00")
            h.update(hashlib.sha256(text.encode("utf-8")).digest())
        return h.hexdigest()

    def reference_payload(self) -> dict[str, Any] | None:
        labels = [
            {"position": i, **r.label} for i, r in enumerate(self.responses) if r.label is not None
        ]
        if not labels and not self.preferences:
            return None
        payload: dict[str, Any] = {"responses": labels}
        payload.update(self.preferences)
        return payload


def response_sha256(prompt: str, text: str) -> str:
    return hashlib.sha256((prompt + text).encode("utf-8")).hexdigest()


def detect_format(keys: Sequence[str], line: int = 1) -> ImportFormat:
    k = set(keys)
    if {"response_0", "response_1"} <= k:
        return "pku-saferlhf"
    if "responses" in k:
        return "generic"
    if "response" in k and ("severity_level" in k or "harm_category" in k):
        return "pku-saferlhf-qa"
    if "response" in k and "category" in k:
        return "beavertails"
    raise ImportRejected(
        "cannot tell the format from the keys "
        f"{sorted(k)[:12]}; name it with --format / ?format= "
        f"({', '.join(FORMATS)})",
        line=line,
    )


class _Taxonomy:
    """A project's category names in order, with a set and positions for fast checks."""

    __slots__ = ("members", "names", "position")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.members = frozenset(self.names)
        self.position = {name: i for i, name in enumerate(self.names)}


class _Fields:
    """Typed access to one line's fields, raising errors that name the line and field."""

    __slots__ = ("data", "limits", "line")

    def __init__(self, raw: RawLine, limits: Limits) -> None:
        self.data = raw.data
        self.line = raw.number
        self.limits = limits

    def fail(self, name: str, message: str) -> ImportRejected:
        return ImportRejected(message, line=self.line, field=name)

    def text(self, name: str, *, required: bool = True, allow_empty: bool = False) -> str:
        if name not in self.data:
            if required:
                raise self.fail(name, "missing")
            return ""
        return self.check_text(name, self.data[name], allow_empty=allow_empty)

    def check_text(self, name: str, value: Any, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {_json_type(value)}")
        # isspace() is the same test as `not value.strip()` without copying the text.
        if not allow_empty and (not value or value.isspace()):
            raise self.fail(name, "must not be empty")
        problem = text_problem(value)
        if problem:
            raise self.fail(name, problem)
        # ASCII: one byte per character; otherwise encodable, as just checked.
        size = len(value) if value.isascii() else len(value.encode("utf-8"))
        if size > self.limits.max_field_bytes:
            raise self.fail(
                name, f"is {size} bytes, more than the limit of {self.limits.max_field_bytes}"
            )
        return value

    def free_object(self, name: str) -> dict[str, Any] | None:
        """Free metadata: any JSON object our storage can hold and serve back."""
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, f"expected an object, got {_json_type(value)}")
        problem = problem_in(value, MAX_META_DEPTH)
        if problem:
            raise self.fail(name, problem)
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        if size > self.limits.max_field_bytes:
            raise self.fail(
                name, f"is {size} bytes, more than the limit of {self.limits.max_field_bytes}"
            )
        return value

    def optional_text(self, name: str) -> str:
        """A short optional label (a source or an id): it goes into a 200-character column."""
        value = self.data.get(name)
        if value is None:
            return ""
        return self.short_text(name, value)

    def short_text(self, name: str, value: Any) -> str:
        text = self.check_text(name, value, allow_empty=True)
        if len(text) > MAX_LABEL_CHARS:
            raise self.fail(name, f"is longer than {MAX_LABEL_CHARS} characters")
        return text

    def boolean(self, name: str) -> bool:
        if name not in self.data:
            raise self.fail(name, "missing")
        value = self.data[name]
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {_json_type(value)}")
        return value

    def integer(self, name: str, allowed: range) -> int:
        if name not in self.data:
            raise self.fail(name, "missing")
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {_json_type(value)}")
        if value not in allowed:
            raise self.fail(name, f"must be between {allowed.start} and {allowed.stop - 1}")
        return value

    def categories(self, name: str, taxonomy: _Taxonomy) -> list[str]:
        if name not in self.data:
            raise self.fail(name, "missing")
        value = self.data[name]
        if not isinstance(value, dict):
            raise self.fail(
                name, f"expected an object of category -> bool, got {_json_type(value)}"
            )
        if not taxonomy.members.issuperset(value):
            unknown = next(k for k in value if k not in taxonomy.members)
            raise self.fail(name, f"unknown harm category {unknown!r}")
        flagged = []
        for k, flag in value.items():
            if flag is True:
                flagged.append(k)
            elif flag is not False:
                raise self.fail(name, f"category {k!r}: expected true or false")
        if len(flagged) > 1:
            flagged.sort(key=taxonomy.position.__getitem__)  # taxonomy order, not file order
        return flagged

    def sha256(self, name: str, prompt: str, text: str) -> str:
        """response_sha256(prompt, text), checked against the line's `name` field if present."""
        digest = response_sha256(prompt, text)
        if name in self.data and self.data[name] != digest:
            raise self.fail(name, "does not match sha256(prompt + response)")
        return digest


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _severity_label(is_safe: bool, categories: list[str], severity: int | None) -> dict[str, Any]:
    name = SEVERITY_NAMES.get(severity) if severity else None
    return {"is_safe": is_safe, "harm_categories": categories, "severity": name}


_SEVERITY_RANGE = range(0, 4)
_CHOICE_RANGE = range(0, 2)
# Field names of answer 0 and answer 1 of a pair, built once rather than per line:
# (text, sha256, source, is safe, harm categories, severity).
_PAIR_FIELDS = tuple(
    (
        f"response_{i}",
        f"response_{i}_sha256",
        f"response_{i}_source",
        f"is_response_{i}_safe",
        f"response_{i}_harm_category",
        f"response_{i}_severity_level",
    )
    for i in (0, 1)
)


def _pku_pair(raw: RawLine, limits: Limits, labels: bool, taxonomy: _Taxonomy) -> DraftItem:
    f = _Fields(raw, limits)
    prompt = f.text("prompt")
    responses: list[DraftResponse] = []
    for name, sha_name, source_name, *_ in _PAIR_FIELDS:
        text = f.text(name)
        digest = f.sha256(sha_name, prompt, text)
        responses.append(DraftResponse(text, f.optional_text(source_name), sha256=digest))
    item = DraftItem(raw.number, prompt, f.optional_text("prompt_source"), responses)
    if not labels:
        return item
    # Single-dimension rows carry only `better_response_id` (the trade-off preference).
    dual = "safer_response_id" in f.data or "is_response_0_safe" in f.data
    if dual:
        for r, (*_, safe_name, categories_name, severity_name) in zip(
            responses, _PAIR_FIELDS, strict=True
        ):
            safe = f.boolean(safe_name)
            cats = f.categories(categories_name, taxonomy)
            sev = f.integer(severity_name, _SEVERITY_RANGE)
            r.label = _severity_label(safe, cats, sev)
        better = f.integer("better_response_id", _CHOICE_RANGE)
        safer = f.integer("safer_response_id", _CHOICE_RANGE)
        item.preferences = {"helpfulness": [better, 1 - better], "harmlessness": [safer, 1 - safer]}
    else:
        better = f.integer("better_response_id", _CHOICE_RANGE)
        item.preferences = {"single": [better, 1 - better]}
    return item


def _generic(raw: RawLine, limits: Limits) -> DraftItem:
    f = _Fields(raw, limits)
    prompt = f.text("prompt")
    if "responses" not in f.data:
        raise f.fail("responses", "missing")
    values = f.data["responses"]
    if not isinstance(values, list):
        raise f.fail("responses", f"expected an array, got {_json_type(values)}")
    if len(values) < 2:
        raise f.fail("responses", f"an item needs at least two responses, got {len(values)}")
    if len(values) > MAX_RESPONSES:
        raise f.fail("responses", f"at most {MAX_RESPONSES} responses per item")
    responses = []
    for i, value in enumerate(values):
        name = f"responses[{i}]"
        if isinstance(value, dict):
            text = f.check_text(f"{name}.text", value.get("text"))
            src = value.get("source", "")
            source = f.short_text(f"{name}.source", src) if src else ""
        else:
            text = f.check_text(name, value)
            source = ""
        responses.append(DraftResponse(text, source))
    external = f.data.get("id")
    if external is not None and (isinstance(external, bool) or not isinstance(external, str | int)):
        raise f.fail("id", f"expected a string, got {_json_type(external)}")
    if external is not None:
        external = f.short_text("id", str(external))
    meta = f.free_object("meta")
    return DraftItem(
        raw.number,
        prompt,
        f.optional_text("prompt_source"),
        responses,
        external_id=str(external) if external is not None else None,
        meta=meta,
    )


def _qa_answer(
    raw: RawLine, limits: Limits, fmt: ImportFormat, labels: bool, taxonomy: _Taxonomy
) -> tuple[str, str, DraftResponse]:
    f = _Fields(raw, limits)
    prompt = f.text("prompt")
    text = f.text("response")
    response = DraftResponse(text, f.optional_text("response_source"))
    if fmt == "pku-saferlhf-qa":
        response.sha256 = f.sha256("sha256", prompt, text)
        if labels:
            safe = f.boolean("is_safe")
            cats = f.categories("harm_category", taxonomy)
            sev = f.integer("severity_level", _SEVERITY_RANGE)
            response.label = _severity_label(safe, cats, sev)
    elif labels:
        safe = f.boolean("is_safe")
        cats = f.categories("category", taxonomy)
        response.label = _severity_label(safe, cats, None)
    return prompt, f.optional_text("prompt_source"), response


@dataclass
class ReadStats:
    format: str = ""
    prompts_with_one_answer: int = 0


def read_items(
    fp: IO[bytes],
    fmt: FormatChoice,
    limits: Limits,
    *,
    labels: bool,
    taxonomy: Sequence[str],
    stats: ReadStats | None = None,
) -> Iterator[DraftItem]:
    """Yields validated item drafts. `fp` must be seekable for the one-answer-per-line formats.

    `taxonomy` is the project's category list: imported labels must use its names.
    """
    if fmt not in FORMAT_CHOICES:
        choices = ", ".join(FORMAT_CHOICES)
        raise ImportRejected(f"unknown format {fmt!r}; expected one of {choices}")
    lines = iter_lines(fp, limits.max_line_bytes)
    first = next(lines, None)
    if first is None:
        raise ImportRejected("the file holds no data lines", line=1)
    resolved = detect_format(list(first.data), first.number) if fmt == "auto" else fmt
    if stats is not None:
        stats.format = resolved
    if labels:
        _check_label_taxonomy(resolved, taxonomy)
    names = _Taxonomy(taxonomy)

    def all_lines() -> Iterator[RawLine]:
        yield first
        yield from lines

    if resolved == "pku-saferlhf":
        for raw in all_lines():
            yield _pku_pair(raw, limits, labels, names)
    elif resolved == "generic":
        for raw in all_lines():
            yield _generic(raw, limits)
    else:
        yield from _grouped(fp, all_lines(), resolved, limits, labels, names, stats)


def _check_label_taxonomy(fmt: ImportFormat, taxonomy: Sequence[str]) -> None:
    expected = BEAVERTAILS_14 if fmt == "beavertails" else PKU_SAFERLHF_19
    if fmt != "generic" and not set(expected) <= set(taxonomy):
        raise ImportRejected(
            f"the project's taxonomy does not hold the {fmt} categories; import with "
            "--labels-as ignore or use a project with the matching taxonomy preset"
        )


def _grouped(
    fp: IO[bytes],
    lines: Iterator[RawLine],
    fmt: ImportFormat,
    limits: Limits,
    labels: bool,
    taxonomy: _Taxonomy,
    stats: ReadStats | None,
) -> Iterator[DraftItem]:
    # Pass 1 validates every line and writes where each answer is (its prompt's digest and
    # byte offset) to a temporary SQLite file, so memory does not grow with the number of
    # lines. Pass 2 reads the answers back grouped by prompt, prompts in order of first line.
    with PromptGroups() as groups:
        for raw in lines:
            prompt, _, _ = _qa_answer(raw, limits, fmt, labels, taxonomy)
            groups.add(prompt, raw.offset, raw.number)
        crowded = groups.first_crowded(MAX_RESPONSES)
        if crowded is not None:
            count, line = crowded
            raise ImportRejected(
                f"this prompt has {count} answers; an item holds at most {MAX_RESPONSES}",
                line=line,
                field="prompt",
            )
        if stats is not None:
            stats.prompts_with_one_answer = groups.single_count()
        for members in groups.groups():
            responses = []
            prompt = source = ""
            for offset, number in members:
                raw = read_line_at(fp, offset, number, limits.max_line_bytes)
                prompt, source, response = _qa_answer(raw, limits, fmt, labels, taxonomy)
                responses.append(response)
            yield DraftItem(members[0][1], prompt, source, responses)
