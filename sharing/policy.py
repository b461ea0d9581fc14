"""Which items are masked by default, and how (DOMAIN.md "Masking defaults")."""
from __future__ import annotations

from catalog.enums import SecurityGrade, Sensitivity
from catalog.models import DataItem
from sharing.engine import ColumnSpec, mask_kind_for

# Kinds that identify or locate a natural person: masked by default wherever the item describes a 自然人.
PERSONAL_KINDS = frozenset({"id_number", "mobile", "name", "address", "account"})
HIGH_GRADES = frozenset({SecurityGrade.L3, SecurityGrade.L4})


def mask_kind(item: DataItem) -> str:
    element = item.data_element
    return mask_kind_for(element.name, element.checks or [])


def masked_by_default(item: DataItem) -> bool:
    if item.sensitivity == Sensitivity.sensitive_personal or item.security_grade in HIGH_GRADES:
        return True
    return item.data_element.object_class_term == "自然人" and mask_kind(item) in PERSONAL_KINDS


def column_specs(items: list[DataItem], fields: list[str], unmasked: list[str]) -> list[ColumnSpec]:
    """The granted columns in the order granted, each masked unless the grant explicitly holds it in plain text."""
    by_code = {item.code: item for item in items}
    plain = set(unmasked)
    return [ColumnSpec(code, None if code in plain or not masked_by_default(by_code[code]) else mask_kind(by_code[code]))
            for code in fields]
