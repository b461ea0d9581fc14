"""Schemathesis against the app's own OpenAPI: every operation, anonymous and authenticated, on both databases.

Required: zero server errors and zero responses that violate the documented schema (status codes and bodies).
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error

from tests.conftest import bearer


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_anonymous_calls_never_fail_or_break_the_schema(case):
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_authenticated_calls_never_fail_or_break_the_schema(case, tokens):
    case.call_and_validate(headers=bearer(tokens["steward"]), checks=CHECKS)
