"""Export line shapes (docs/ml-engineers/formats.md). Dict insertion order is the key order.

Items with more than two responses need pairs: every unordered pair of responses, i < j in
position order, gives one line, with ``response_0`` the earlier position. (Both orders of a pair
would only duplicate the same preference mirrored.) A pair's preference is its pair majority
(app/consensus/pairwise.py); a pair without one is left out of the formats that need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from app.consensus.aggregate import DIMENSIONS, Dimension
from app.consensus.labels import FinalLabels, ResponseLabels

ExportFormat = Literal[
    "pku-saferlhf",
    "pku-saferlhf-single",
    "pku-saferlhf-qa",
    "dpo-helpful",
    "dpo-harmless",
    "annotations",
]
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)

# What the export form (templates/fragments/export_form.html) offers.
EXPORT_FORM: dict[str, Any] = {"export_formats": FORMATS, "export_dimensions": DIMENSIONS}

# The dimensions each consensus format writes (and, by default, requires to agree).
NEEDS: dict[ExportFormat, tuple[Dimension, ...]] = {
    "pku-saferlhf": ("helpfulness", "harmlessness", "is_safe"),
    "pku-saferlhf-single": ("single",),
    "pku-saferlhf-qa": ("is_safe",),
    "dpo-helpful": ("helpfulness",),
    "dpo-harmless": ("harmlessness",),
}

PKU_SAFERLHF_KEYS = (
    "prompt",
    "response_0",
    "response_1",
    "prompt_source",
    "response_0_source",
    "response_1_source",
    "is_response_0_safe",
    "is_response_1_safe",
    "response_0_harm_category",
    "response_1_harm_category",
    "response_0_severity_level",
    "response_1_severity_level",
    "better_response_id",
    "safer_response_id",
    "response_0_sha256",
    "response_1_sha256",
)
PKU_SINGLE_KEYS = (
    "prompt",
    "response_0",
    "response_1",
    "prompt_source",
    "response_0_source",
    "response_1_source",
    "better_response_id",
    "response_0_sha256",
    "response_1_sha256",
)
PKU_QA_KEYS = (
    "prompt",
    "response",
    "prompt_source",
    "response_source",
    "is_safe",
    "harm_category",
    "severity_level",
    "sha256",
)


@dataclass(frozen=True, slots=True)
class ResponseRow:
    id: int
    position: int
    text: str
    source: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item with its responses in position order."""

    id: int
    project_id: int
    prompt: str
    prompt_source: str
    responses: Sequence[ResponseRow]


def _pairs(item: ItemRow) -> Iterator[tuple[ResponseRow, ResponseRow]]:
    rs = item.responses
    for i in range(len(rs)):
        for j in range(i + 1, len(rs)):
            yield rs[i], rs[j]


def _prefers_second(
    labels: FinalLabels, dimension: str, a: ResponseRow, b: ResponseRow
) -> int | None:
    """0 if ``a`` is preferred to ``b``, 1 if ``b`` is (the public ``*_response_id``
    convention), None if the pair is unresolved."""
    winner = labels.pair_winner(dimension, a.id, b.id)
    if winner is None:
        return None
    return 0 if winner == a.id else 1


def _categories(labels: ResponseLabels, taxonomy: Sequence[str]) -> dict[str, bool]:
    flags = dict.fromkeys(taxonomy, False)
    for name in labels.categories:
        if name in flags:  # a name outside the project's taxonomy would add a key
            flags[name] = True
    return flags


def pku_saferlhf(
    item: ItemRow, labels: FinalLabels, taxonomy: Sequence[str]
) -> Iterator[dict[str, Any]]:
    for a, b in _pairs(item):
        better = _prefers_second(labels, "helpfulness", a, b)
        safer = _prefers_second(labels, "harmlessness", a, b)
        if better is None or safer is None:
            continue
        la, lb = labels.responses[a.id], labels.responses[b.id]
        yield {
            "prompt": item.prompt,
            "response_0": a.text,
            "response_1": b.text,
            "prompt_source": item.prompt_source,
            "response_0_source": a.source,
            "response_1_source": b.source,
            "is_response_0_safe": la.is_safe,
            "is_response_1_safe": lb.is_safe,
            "response_0_harm_category": _categories(la, taxonomy),
            "response_1_harm_category": _categories(lb, taxonomy),
            "response_0_severity_level": la.severity,
            "response_1_severity_level": lb.severity,
            "better_response_id": better,
            "safer_response_id": safer,
            "response_0_sha256": a.sha256,
            "response_1_sha256": b.sha256,
        }


def pku_saferlhf_single(
    item: ItemRow, labels: FinalLabels, taxonomy: Sequence[str]
) -> Iterator[dict[str, Any]]:
    for a, b in _pairs(item):
        better = _prefers_second(labels, "single", a, b)
        if better is None:
            continue
        yield {
            "prompt": item.prompt,
            "response_0": a.text,
            "response_1": b.text,
            "prompt_source": item.prompt_source,
            "response_0_source": a.source,
            "response_1_source": b.source,
            "better_response_id": better,
            "response_0_sha256": a.sha256,
            "response_1_sha256": b.sha256,
        }


def pku_saferlhf_qa(
    item: ItemRow, labels: FinalLabels, taxonomy: Sequence[str]
) -> Iterator[dict[str, Any]]:
    for r in item.responses:
        label = labels.responses[r.id]
        yield {
            "prompt": item.prompt,
            "response": r.text,
            "prompt_source": item.prompt_source,
            "response_source": r.source,
            "is_safe": label.is_safe,
            "harm_category": _categories(label, taxonomy),
            "severity_level": label.severity,
            "sha256": r.sha256,
        }


def _dpo(item: ItemRow, labels: FinalLabels, dimension: str) -> Iterator[dict[str, Any]]:
    for a, b in _pairs(item):
        second = _prefers_second(labels, dimension, a, b)
        if second is None:
            continue
        chosen, rejected = (b, a) if second else (a, b)
        yield {"prompt": item.prompt, "chosen": chosen.text, "rejected": rejected.text}


def dpo_helpful(
    item: ItemRow, labels: FinalLabels, taxonomy: Sequence[str]
) -> Iterator[dict[str, Any]]:
    return _dpo(item, labels, "helpfulness")


def dpo_harmless(
    item: ItemRow, labels: FinalLabels, taxonomy: Sequence[str]
) -> Iterator[dict[str, Any]]:
    return _dpo(item, labels, "harmlessness")


LINES = {
    "pku-saferlhf": pku_saferlhf,
    "pku-saferlhf-single": pku_saferlhf_single,
    "pku-saferlhf-qa": pku_saferlhf_qa,
    "dpo-helpful": dpo_helpful,
    "dpo-harmless": dpo_harmless,
}
