"""Plain, database-free views of one annotator's judgement of one item."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SEVERITY_NAMES: tuple[str, ...] = ("minor", "moderate", "severe")


def severity_level(name: str) -> int:
    """Map ``minor|moderate|severe`` to 1..3 (the PKU-SafeRLHF ``severity_level``)."""
    try:
        return SEVERITY_NAMES.index(name) + 1
    except ValueError:
        raise ValueError(f"unknown severity {name!r}") from None


def severity_name(level: int) -> str:
    """Map 1..3 back to ``minor|moderate|severe``."""
    if level not in (1, 2, 3):
        raise ValueError(f"severity level must be 1..3, got {level!r}")
    return SEVERITY_NAMES[level - 1]


@dataclass(frozen=True, slots=True)
class ResponseVote:
    """One annotator's safety labels for one response; severity is 1..3, None when safe."""

    is_safe: bool
    categories: frozenset[str] = frozenset()
    severity: int | None = None

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in (1, 2, 3):
            raise ValueError(f"severity level must be 1..3 or None, got {self.severity!r}")
        # Callers often hold lists or sets; freeze them so votes stay hashable and immutable.
        if not isinstance(self.categories, frozenset):
            object.__setattr__(self, "categories", frozenset(self.categories))


@dataclass(frozen=True, slots=True)
class Vote:
    """One submitted annotation of an item. Rankings are response ids, best first."""

    annotator: str
    responses: Mapping[int, ResponseVote]
    helpfulness: tuple[int, ...]
    harmlessness: tuple[int, ...]
    single: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # Rankings are counted as dict keys, so lists coming from JSON must become tuples.
        object.__setattr__(self, "helpfulness", tuple(self.helpfulness))
        object.__setattr__(self, "harmlessness", tuple(self.harmlessness))
        if self.single is not None:
            object.__setattr__(self, "single", tuple(self.single))
