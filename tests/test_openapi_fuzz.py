"""Schemathesis against the app's own OpenAPI: every operation, anonymous and authenticated, on both databases.

Required: zero server errors and zero responses that violate the documented schema (status codes, content types
and bodies). Each operation gets its own Hypothesis run from schemathesis' strategy for it; failures from all
operations are collected and reported together.
"""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25


def _fuzz(app, headers: dict[str, str] | None) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - every failing operation is reported below
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
    return operations, failures


def test_anonymous_calls_never_fail_or_break_the_schema(app):
    operations, failures = _fuzz(app, None)
    assert operations >= 15
    assert not failures, "\n\n".join(failures)


def test_authenticated_calls_never_fail_or_break_the_schema(app, tokens):
    operations, failures = _fuzz(app, bearer(tokens["steward"]))
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
