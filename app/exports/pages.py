"""Exporting from the browser: the export form (on the batch and project pages) is a GET
form to `/export`, which streams the same file as `GET /api/v1/exports/{format}`.

A form sends its empty fields as empty strings; here an empty field means the API's default.
"""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.auth.access import allow
from app.auth.dependencies import AdminUser
from app.db import DbSession
from app.errors import Invalid
from app.exports.filters import ExportFilters, Split, parse_dimensions
from app.exports.formats import FORMATS
from app.exports.router import export_response

router = APIRouter(tags=["pages"], include_in_schema=False)
SPLITS: tuple[str, ...] = get_args(Split)
DEFAULT_TEST_FRACTION = ExportFilters().test_fraction


def _number(name: str, value: str, kind: type[int] | type[float]) -> int | float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise Invalid(f"{name}: {value!r} is not a number") from None


@router.get("/export")
@allow("admin")
def export_download(
    request: Request,
    session: DbSession,
    _admin: AdminUser,
    format: Annotated[str, Query(max_length=32)] = "pku-saferlhf",
    batch_id: Annotated[str, Query(max_length=20)] = "",
    project_id: Annotated[str, Query(max_length=20)] = "",
    min_annotations: Annotated[str, Query(max_length=20)] = "",
    min_agreement: Annotated[str, Query(max_length=20)] = "",
    dimensions: Annotated[list[str] | None, Query()] = None,
    include_unresolved: Annotated[str, Query(max_length=8)] = "",
    split: Annotated[str, Query(max_length=8)] = "",
    test_fraction: Annotated[str, Query(max_length=20)] = "",
    accepted_only: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    if format not in FORMATS:
        raise Invalid(f"format: unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if split and split not in SPLITS:
        raise Invalid(f"split: {split!r}; use train, test or leave it empty for both")
    fraction = _number("test_fraction", test_fraction, float)
    filters = ExportFilters(
        project_id=_id("project_id", project_id),
        batch_id=_id("batch_id", batch_id),
        min_annotations=_id("min_annotations", min_annotations),
        min_agreement=_number("min_agreement", min_agreement, float),
        dimensions=parse_dimensions(dimensions),
        include_unresolved=include_unresolved in ("1", "true", "on"),
        split=split or None,  # type: ignore[arg-type]
        test_fraction=DEFAULT_TEST_FRACTION if fraction is None else fraction,
        accepted_only=accepted_only in ("1", "true", "on"),
    )
    return export_response(request, session, format, filters)


def _id(name: str, value: str) -> int | None:
    number = _number(name, value, int)
    return None if number is None else int(number)
