"""Response bodies of the quality API."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class RuleResultOut(BaseModel):
    rule_id: str = Field(examples=["cn_resident_id:sfzhm"])
    kind: str
    dimension: str = Field(examples=["准确性"])
    columns: list[str]
    element: str | None = Field(description="the data element judged; failures go to its authoritative source")
    description: str
    evaluated: int
    failing: int
    rate: float
    sample_keys: list[str] = Field(description="the first failing row keys; all are at …/failing")


class QualityRunOut(BaseModel):
    id: int
    dataset_code: str
    version: int
    executor: str
    row_count: int
    scores: dict[str, float | None] = Field(description="规范性, 完整性, 准确性, 唯一性, 一致性, 时效性 → 0–100")
    overall_score: float | None
    started_at: dt.datetime
    finished_at: dt.datetime
    rules: list[RuleResultOut]


class FailingKeysOut(BaseModel):
    rule_id: str
    total: int
    offset: int
    keys: list[str]
