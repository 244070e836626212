"""Property-based run of the JSON API against its own OpenAPI document (schemathesis).

For every operation, as an admin and as an annotator, schemathesis generates valid and invalid
requests from the schema and checks the answers: never a 5xx, a documented status code and
content type, and a body that matches the documented schema. Bounded (a few examples per
operation) so the whole run stays well under a minute on both backends.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from sqlalchemy.orm import Session

from app.main import create_app
from tests.support.access_world import World, build_world

EXAMPLES = 5
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture
def fuzz_world(db: Session) -> World:
    world = build_world(db)
    db.commit()
    return world


HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# schemathesis's own pytest plugin does not run under pytest 9, so each operation becomes a
# test here and hypothesis drives schemathesis's strategies directly. The document is the one
# the app serves at /openapi.json, generated once.
DOCUMENT = create_app().openapi()
OPERATIONS = sorted(
    result.ok().label for result in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations()
)


REQUEST_TIMEOUT = 120  # seconds


def load_schema(app: FastAPI) -> Any:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    schema.app = app  # requests go to this app in-process, as from_asgi() would set up
    schema.location = "/openapi.json"
    return schema


def test_the_document_served_is_the_one_fuzzed(client: Any) -> None:
    assert client.get("/openapi.json").json() == DOCUMENT


@pytest.mark.slow
@pytest.mark.parametrize("role", ["admin", "member"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_api_conforms_to_its_schema(label: str, role: str, app: FastAPI, fuzz_world: World) -> None:
    """`member` is an annotator in batch B with a submitted assignment of their own."""
    operation = load_schema(app).find_operation_by_label(label)
    assert operation is not None
    headers = {"Authorization": f"Bearer {fuzz_world.tokens[role]}"}
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @HYPOTHESIS
    @given(case=strategy)
    def check(case: Any) -> None:
        # The timeout guards against a hang only: schemathesis's default (10 s) was reached by
        # correct answers on a machine loaded far beyond its cores.
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT)

    check()
