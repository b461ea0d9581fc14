"""Load data element standards (数据元) from `schemas/standards/*.yaml` into the database.

Each file is a list of element versions (identifier + version unique). Loading is idempotent: an existing
(identifier, version) is updated in place only when it is not yet used by any item — a published standard version
that items are bound to is immutable, and a changed definition must come as a new version.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.enums import DataType, SecurityGrade, Sensitivity

STANDARDS_DIR = Path(__file__).parent / "standards"
KNOWN_CHECKS = {"cn_resident_id", "cn_uscc", "cn_org_code", "cn_division_code", "cn_gender_code", "cn_mobile"}


class StandardFileError(ValueError):
    """A standards file is malformed; the message names the file, the entry and the field."""


class DataElementSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    version: str = Field(pattern=r"^[0-9A-Za-z.\-]{1,16}$")
    name: str = Field(min_length=1, max_length=128)
    name_en: str | None = None
    definition: str | None = None
    data_type: DataType
    format: str | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    pattern: str | None = None
    code_list: dict[str, str] | None = None
    value_range: dict[str, Any] | None = None
    sensitivity: Sensitivity = Sensitivity.general
    security_grade: SecurityGrade = SecurityGrade.L1
    object_class_term: str | None = None
    representation_term: str | None = None
    unit: str | None = None
    source_org: str | None = None
    checks: list[str] = []
    published: dt.date | None = None
    remarks: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern 不是合法的正则表达式: {exc}") from exc
        return v

    @field_validator("code_list", mode="before")
    @classmethod
    def _code_keys_as_text(cls, v: Any) -> Any:
        return {str(k): str(val) for k, val in v.items()} if isinstance(v, dict) else v

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, v: list[str]) -> list[str]:
        unknown = set(v) - KNOWN_CHECKS
        if unknown:
            raise ValueError(f"未知的校验规则 {sorted(unknown)}；可用：{sorted(KNOWN_CHECKS)}")
        return v


def read_standards(directory: Path = STANDARDS_DIR) -> list[DataElementSpec]:
    specs: list[DataElementSpec] = []
    seen: dict[tuple[str, str], str] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise StandardFileError(f"{directory} 中没有标准文件 (*.yaml)")
    for path in files:
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as exc:
            raise StandardFileError(f"{path.name}: 不是合法的 YAML: {exc}") from exc
        if not isinstance(entries, list):
            raise StandardFileError(f"{path.name}: 顶层必须是数据元列表")
        for n, entry in enumerate(entries, 1):
            try:
                spec = DataElementSpec.model_validate(entry)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                ident = entry.get("identifier") if isinstance(entry, dict) else None
                raise StandardFileError(f"{path.name} 第 {n} 项 ({ident}) 字段 {where}: {first['msg']}") from exc
            key = (spec.identifier, spec.version)
            if key in seen:
                raise StandardFileError(f"{path.name}: 数据元 {spec.identifier} 版本 {spec.version} 与 {seen[key]} 重复")
            seen[key] = path.name
            specs.append(spec)
    return specs


def load_standards(session: Session, specs: list[DataElementSpec]) -> dict[str, int]:
    from catalog.models import DataElement, DataItem

    stats = {"created": 0, "updated": 0, "unchanged": 0, "kept_in_use": 0}
    existing = {(e.identifier, e.version): e for e in session.execute(select(DataElement)).scalars()}
    used = set(session.execute(select(DataItem.data_element_id).distinct()).scalars())
    for spec in specs:
        values = spec.model_dump()
        row = existing.get((spec.identifier, spec.version))
        if row is None:
            session.add(DataElement(**values))
            stats["created"] += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if not changed:
            stats["unchanged"] += 1
        elif row.id in used:
            stats["kept_in_use"] += 1
        else:
            for k, v in changed.items():
                setattr(row, k, v)
            stats["updated"] += 1
    session.flush()
    return stats
