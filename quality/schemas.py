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


class ReportRule(BaseModel):
    rule_id: str
    dimension: str
    description: str
    failing: int
    evaluated: int
    rate: float
    dataset_code: str | None = None
    dataset_name: str | None = None


class TrendPoint(BaseModel):
    version: int
    overall_score: float | None
    scores: dict[str, float | None]


class DatasetQuality(BaseModel):
    dataset_code: str
    dataset_name: str
    department_code: str
    department_name: str
    latest_version: int
    overall_score: float | None
    scores: dict[str, float | None]
    trend: list[TrendPoint]
    open_tickets: int
    overdue_tickets: int
    worst_rules: list[ReportRule]


class DepartmentQuality(BaseModel):
    department_code: str
    department_name: str
    datasets_checked: int
    overall_score: float | None
    scores: dict[str, float | None]
    open_tickets_assigned: int
    overdue_tickets_assigned: int
    disputed_tickets: int


class QualityReport(BaseModel):
    dimensions: list[str]
    departments: list[DepartmentQuality]
    datasets: list[DatasetQuality]
    worst_rules: list[ReportRule]


class TicketEventOut(BaseModel):
    at: dt.datetime
    actor: str | None = Field(description="user name; null when the platform acted")
    actor_department: str | None
    from_status: str | None
    to_status: str
    comment: str


class TicketOut(BaseModel):
    id: int
    dataset_code: str
    dataset_name: str
    origin: str = Field(description="quality (a failing rule) | report (数据异议)")
    rule_id: str | None
    title: str
    description: str
    dimension: str | None
    item_code: str | None
    element: str | None
    status: str
    status_name: str
    assigned_department: str = Field(description="the element's authoritative source department (一数一源)")
    first_receiver_department: str = Field(description="首问: accountable until closure")
    failing_count: int | None
    evaluated: int | None
    sample_keys: list[str]
    latest_version: int | None
    latest_run_id: int | None
    runs_seen: int
    deadline: dt.datetime
    overdue: bool
    escalated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    allowed_transitions: list[str] = Field(description="statuses the caller may move this ticket to now")
    events: list[TicketEventOut]


class TransitionIn(BaseModel):
    to: str = Field(pattern="^(assigned|in_progress|fixed|verified|closed|disputed)$", examples=["in_progress"])
    comment: str = Field(min_length=1, max_length=2000, examples=["已安排核查，预计 3 个工作日内完成整改"])


class ReportIn(BaseModel):
    item_code: str | None = Field(default=None, max_length=64, examples=["xm"])
    description: str = Field(min_length=4, max_length=4000, examples=["该人员姓名与户籍登记不一致"])
    contact: str | None = Field(default=None, max_length=200, description="required when reporting anonymously")


class RectificationOut(BaseModel):
    department_code: str
    department_name: str
    due: int
    on_time: int
    rate: float | None


class RectificationIndicator(BaseModel):
    indicator: str = "问题数据及时整改率"
    overall: RectificationOut
    departments: list[RectificationOut]
