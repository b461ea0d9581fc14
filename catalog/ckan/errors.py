"""CKAN's error kinds that have no twin in catalog.errors, and the coercion of loosely typed action parameters.

Action parameters arrive as JSON values (POST with a JSON body) or as strings (GET query strings, forms, multipart):
the helpers here accept both, as CKAN's own validators do, and answer a Validation Error naming the parameter.
"""
from __future__ import annotations

import json
from typing import Any


class CkanValidationError(Exception):
    """CKAN's "Validation Error" (409): each field maps to a list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class SearchQueryError(Exception):
    """CKAN's "Search Query Error" (400): q, fq or sort cannot be understood."""


def invalid(field: str, message: str) -> CkanValidationError:
    return CkanValidationError({field: [message]})


def as_str(data: dict[str, Any], key: str, default: str | None = None, *, required: bool = False,
           max_length: int = 2000) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise invalid(key, "Missing value")
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise invalid(key, "应为字符串 (must be a string)")
    if len(value) > max_length:
        raise invalid(key, f"过长：最多 {max_length} 个字符")
    return value


def as_int(data: dict[str, Any], key: str, default: int, *, minimum: int | None = None,
           maximum: int | None = None, clamp: bool = False) -> int:
    """An integer parameter; above `maximum` it is clamped (CKAN's limit_to_configured_maximum) when `clamp`."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid(key, "Invalid integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise invalid(key, "Invalid integer") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise invalid(key, "Invalid integer")
        value = int(value)
    if not isinstance(value, int):
        raise invalid(key, "Invalid integer")
    if minimum is not None and value < minimum:
        raise invalid(key, f"Must be at least {minimum}")
    if maximum is not None and value > maximum:
        if not clamp:
            raise invalid(key, f"Must be at most {maximum}")
        value = maximum
    if abs(value) > 2**62:
        raise invalid(key, "Invalid integer")
    return value


_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n", ""}


def as_bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise invalid(key, "Value must be one of: true, false")


def loads_if_text(value: Any, key: str) -> Any:
    """A structured value that came as text (query string, form, multipart) is JSON; anything else is as sent."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return json.loads(text)
            except ValueError:
                raise invalid(key, "无法解析为 JSON (invalid JSON)") from None
    return value


def as_list(value: Any, key: str, *, split_commas: bool = True) -> list[Any]:
    """A list parameter: a JSON list, a list, or (from a query string or form) "a,b" text."""
    if value is None or value == "":
        return []
    value = loads_if_text(value, key)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if split_commas else [value]
    if isinstance(value, list):
        return value
    raise invalid(key, "应为列表 (must be a list)")


def as_dict(value: Any, key: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    value = loads_if_text(value, key)
    if not isinstance(value, dict):
        raise invalid(key, "应为对象 (must be a dict)")
    return value
