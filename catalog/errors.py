"""Domain errors. The HTTP layer maps them to status codes in one place (catalog/app.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DomainError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


class NotAuthenticated(DomainError):
    status_code = 401
    error = "invalid_token"


class PermissionDenied(DomainError):
    status_code = 403
    error = "forbidden"


class NotFound(DomainError):
    status_code = 404
    error = "not_found"


class Conflict(DomainError):
    status_code = 409
    error = "conflict"


class AuthoritativeSourceConflict(Conflict):
    """一数一源: the data element already has an authoritative source elsewhere."""

    error = "authoritative_source_conflict"


@dataclass
class RuleViolation:
    field: str  # dotted path in the request body, e.g. "open_type" or "items.2.element"
    rule: str  # stable rule id, e.g. "open.unconditional_requires_l1"
    message: str  # Chinese, names the field and the rule

    def as_detail(self) -> dict[str, Any]:
        loc: list[Any] = ["body", *[int(p) if p.isdigit() else p for p in self.field.split(".")]]
        return {"loc": loc, "msg": self.message, "type": self.rule}


class CatalogRuleError(DomainError):
    """One or more catalog rules (DOMAIN.md "Rules") are broken; each violation names its field and rule."""

    status_code = 422
    error = "catalog_rule_violation"

    def __init__(self, violations: list[RuleViolation]):
        self.violations = violations
        super().__init__("；".join(v.message for v in violations))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "message": self.message,
            "detail": [v.as_detail() for v in self.violations],
        }
